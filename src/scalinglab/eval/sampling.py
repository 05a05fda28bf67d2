"""The one sampler: continuations of a prompt, greedy or nucleus-sampled.

``Scorer.generate`` (generative tasks, the lm-eval adapter) draws one continuation with stop
sequences; the toxicity stage draws K per prompt as the rows of one batch. Both go through
``sample_continuations`` with a :class:`SamplingConfig`, so a new model feature (a KV cache,
grouped-query attention) or a sampling fix lands in one place.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from scalinglab.config import Config, ConfigError

if TYPE_CHECKING:  # torch loads with the first sample, not with the CLI's flags
    import torch

    from scalinglab.eval.tokenizer import Tokenizer
    from scalinglab.model.transformer import Transformer


@dataclasses.dataclass
class SamplingConfig(Config):
    """How continuations are drawn. The defaults are greedy decoding of one continuation."""

    samples: int = 1
    """Continuations per prompt (K); drawn together as one batch."""
    max_new_tokens: int = 64
    """Tokens per continuation at most (fewer when end-of-text or a stop sequence comes)."""
    top_p: float = 1.0
    """Nucleus mass: sample from the most likely tokens that together reach it (1 = all)."""
    temperature: float = 0.0
    """Logits are divided by it before the softmax; 0 is greedy."""
    seed: int = 0
    """Seed of the sampling generator (the same seed gives the same samples)."""

    def __post_init__(self) -> None:
        if self.samples < 1 or self.max_new_tokens < 1:
            raise ConfigError("sampling: samples and max_new_tokens must be >= 1 "
                              f"(got {self.samples}, {self.max_new_tokens})")
        if not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ConfigError(f"sampling: top_p must be in (0, 1] and temperature >= 0 "
                              f"(got {self.top_p}, {self.temperature})")


TOXICITY_SAMPLING = SamplingConfig(samples=25, max_new_tokens=20, top_p=0.9, temperature=1.0)
"""RealToxicityPrompts' sampling (the toxicity stage's defaults): K = 25 continuations of up
to 20 tokens, nucleus mass 0.9, temperature 1."""

FIELD_HELP = {
    "samples": "continuations per prompt",
    "max_new_tokens": "tokens per continuation at most",
    "top_p": "nucleus sampling mass, in (0, 1]",
    "temperature": "sampling temperature; 0 is greedy",
    "seed": "sampling seed",
}
"""One line per SamplingConfig field, for command-line flags built from the config."""


def add_sampling_flags(parser, defaults: SamplingConfig) -> None:
    """``--samples``, ``--max-new-tokens``, ... for every field, defaulting to ``defaults``."""
    for f in dataclasses.fields(SamplingConfig):
        value = getattr(defaults, f.name)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(value), default=value,
                            help=f"{FIELD_HELP[f.name]} ({value})")


def sampling_from_args(args) -> SamplingConfig:
    """The SamplingConfig the flags of :func:`add_sampling_flags` describe (validated)."""
    return SamplingConfig(**{f.name: getattr(args, f.name)
                             for f in dataclasses.fields(SamplingConfig)})


def nucleus_sample(logits: torch.Tensor, top_p: float, temperature: float,
                   gen: torch.Generator) -> torch.Tensor:
    """One token per row of ``logits`` (K, V): from the smallest set of tokens whose
    probability reaches ``top_p`` (Holtzman et al.), renormalized. Greedy at temperature 0."""
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # (K, V)
    if top_p >= 1.0:  # no truncation: skip the sort, whose cumsum can round to 1 early
        return torch.multinomial(probs, 1, generator=gen)[:, 0]
    sorted_p, order = probs.sort(dim=-1, descending=True)
    before = sorted_p.cumsum(-1) - sorted_p  # mass of the more likely tokens
    sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)  # the top token always stays
    pick = torch.multinomial(sorted_p, 1, generator=gen)  # (K, 1); multinomial renormalizes
    return order.gather(-1, pick)[:, 0]


def sample_continuations(model: Transformer, tokenizer: Tokenizer, prompt: str,
                         cfg: SamplingConfig, until: list[str] | None = None
                         ) -> list[list[int]]:
    """``cfg.samples`` continuations of ``prompt`` as token ids (end-of-text excluded, at most
    ``cfg.max_new_tokens`` each; a row stops once its text contains a stop sequence of
    ``until``). The rows are one batch: one forward per step. Prompts longer than the model's
    context keep their last tokens. Same config, same samples."""
    import torch

    with torch.no_grad():
        return _sample(model, tokenizer, prompt, cfg, until, torch)


def _sample(model, tokenizer, prompt, cfg, until, torch) -> list[list[int]]:
    max_len = model.config.max_seq_len
    device = next(model.parameters()).device
    ids = (tokenizer.encode(prompt) or [tokenizer.eot_id])[-(max_len - 1):]
    seq = torch.tensor([ids] * cfg.samples, device=device)  # (K, T)
    gen = torch.Generator().manual_seed(cfg.seed)
    done = torch.zeros(cfg.samples, dtype=torch.bool)
    out: list[list[int]] = [[] for _ in range(cfg.samples)]
    for _ in range(cfg.max_new_tokens):
        h = model.hidden_states(seq[:, -max_len:])[:, -1]  # (K, D)
        nxt = nucleus_sample(model.output(h).float().cpu(), cfg.top_p, cfg.temperature, gen)
        done |= nxt == tokenizer.eot_id
        for row in (~done).nonzero()[:, 0].tolist():
            out[row].append(int(nxt[row]))
            if until and any(s in tokenizer.decode(out[row]) for s in until):
                done[row] = True
        if done.all():
            break
        seq = torch.cat([seq, nxt[:, None].to(device)], dim=1)
    return out
