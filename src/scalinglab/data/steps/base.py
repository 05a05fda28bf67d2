"""PipelineStep and Filter: small generators over Documents that count what they do.

A step's ``run(docs)`` yields the documents it keeps (possibly modified) and records counts in
``self.stats``. A filter only overrides ``filter(doc)``, returning True to keep or
``(False, reason)`` to drop; drops are counted per reason, in documents and bytes, so no data
is ever lost silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from scalinglab.data.document import Document


class StepStats:
    """Documents and bytes in / out of one step, and drops per reason."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, key: str, docs: int = 1, nbytes: int = 0) -> None:
        self.counts[f"{key}.docs"] += docs
        self.counts[f"{key}.bytes"] += nbytes

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


class PipelineStep:
    """Base of every corpus step. Subclasses override ``process`` (or ``run``)."""

    name = "step"

    def __init__(self) -> None:
        self.stats = StepStats()

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            nbytes = len(doc.text.encode("utf-8"))
            self.stats.add("in", 1, nbytes)
            for out in self.process(doc):
                self.stats.add("out", 1, len(out.text.encode("utf-8")))
                yield out

    def process(self, doc: Document) -> Iterable[Document]:
        yield doc


class Filter(PipelineStep):
    """A step that keeps or drops whole documents, counting drops per reason."""

    name = "filter"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        raise NotImplementedError

    _decided: dict[str, bool | tuple[bool, str]] | None = None

    def decide_ahead(self, docs: Iterable[Document]) -> Iterator[Document]:
        """The documents this filter keeps, remembering every decision by id, so that the main
        pass (``process``) counts them without deciding again. A corpus-wide scan that needs
        the filters' survivors first (MinHash clusters) runs the filters once, not twice."""
        self._decided = {}
        for doc in docs:
            result = self._decided[doc.id] = self.filter(doc)
            if result if isinstance(result, bool) else result[0]:
                yield doc

    def process(self, doc: Document) -> Iterable[Document]:
        decided = self._decided
        result = decided.pop(doc.id) if decided and doc.id in decided else self.filter(doc)
        keep, reason = (result, self.name) if isinstance(result, bool) else result
        if keep:
            yield doc
        else:
            self.stats.add(f"dropped.{reason}", 1, len(doc.text.encode("utf-8")))
