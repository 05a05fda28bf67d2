"""Small benchmark files in the public formats, written by the tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

PIQA = [
    {"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Push the lid.", "label": 0},
    {"goal": "Dry wet hands", "sol1": "Use a towel.", "sol2": "Use water.", "label": 0},
    {"goal": "Cool soup", "sol1": "Heat it.", "sol2": "Let it stand.", "label": 1},
]
HELLASWAG = [
    {"activity_label": "Baking", "ctx_a": "A man mixes flour.", "ctx_b": "he",
     "endings": ["bakes [title] bread.", "swims.", "sings loudly.", "flies away."],
     "label": "0"},
    {"activity_label": "Running", "ctx_a": "A woman ties her shoes.", "ctx_b": "she",
     "endings": ["sleeps.", "runs down the road.", "eats soup.", "reads."], "label": 1},
]
WINOGRANDE = [
    {"sentence": "The cup fell off the table because the _ was tilted.", "option1": "cup",
     "option2": "table", "answer": "2"},
    {"sentence": "Anna gave Maria a gift because _ was kind.", "option1": "Anna",
     "option2": "Maria", "answer": "1"},
]
ARC = [
    {"question": "Which is a mammal?", "choices": {"text": ["Shark", "Whale", "Trout"],
                                                  "label": ["A", "B", "C"]}, "answerKey": "B"},
    {"question": "What melts ice?", "choices": {"text": ["Heat", "Cold"], "label": ["1", "2"]},
     "answerKey": "1"},
]
BOOLQ = [
    {"passage": "Cats are mammals.", "question": "are cats mammals", "answer": True},
    {"passage": "The sun is a star.", "question": "is the sun a planet", "label": 0},
]
LAMBADA = [{"text": "She opened the door and saw her old friend"},
           {"text": "The train left the station on time"}]

WORDS = ("river stone garden music window paper silver autumn engine forest letter market "
         "ocean pencil castle thunder").split()


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def val_docs(n: int = 12, words: int = 60) -> list[dict]:
    """Held-out documents from two sources: random word sequences, fixed by the index."""
    docs = []
    for i in range(n):
        rng = random.Random(i)
        text = " ".join(rng.choice(WORDS) for _ in range(words))
        docs.append({"text": text + ".", "id": f"doc{i}", "source": "web" if i % 2 else "books"})
    return docs
