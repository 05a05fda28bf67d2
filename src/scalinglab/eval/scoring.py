"""The harness core: log-likelihoods of continuations, rolling log-likelihoods, generation.

Everything is a request in text; :class:`Scorer` tokenizes it the way lm-evaluation-harness's
HF model does (trailing whitespace of the context moves to the continuation; the continuation's
tokens are those of ``encode(context + continuation)`` after ``len(encode(context))``; an empty
context becomes the end-of-text token), so scores agree with that harness on the same model.
One exception: when a token of ``encode(context + continuation)`` straddles the boundary (a
multi-word tokenizer merging across it), the continuation is encoded on its own.

Batching: a question's choices share its context. Each *group* (one context, several
continuations) is packed into one row, ``[context | choice 1 | choice 2 | ...]``, run through
the model's own forward with a prefix-sharing mask (``model/masks.py``: each choice sees the
context and itself, its positions continuing the context's), and rows are batched up to
``batch_tokens``. The logits are those of running ``context + choice`` alone, but the context
is computed once per question instead of once per choice.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from tqdm import tqdm

from scalinglab.errors import ScalinglabError
from scalinglab.eval.sampling import SamplingConfig, sample_continuations
from scalinglab.eval.tokenizer import Tokenizer
from scalinglab.model.masks import prefix_sharing_mask
from scalinglab.model.transformer import Transformer

LogLik = tuple[float, bool]
"""(log-likelihood of the continuation, whether greedy decoding would produce it)."""


@dataclass
class Group:
    """Token-level request: one context (>= 1 token) and continuations scored after it."""

    context: list[int]
    continuations: list[list[int]]


@dataclass
class _Row:
    """One packed row and where each branch's predictions sit in it."""

    tokens: list[int]
    positions: list[int]
    segments: list[int]  # 0 context, i + 1 branch i
    group: int
    branches: list[tuple[int, list[int], list[int]]]  # (branch, rows predicting, targets)


class Scorer:
    """Scores text requests with one model and its tokenizer.

    Args:
        model: the Transformer (eval mode is set here).
        tokenizer: the model's tokenizer.
        batch_tokens: padded tokens per forward pass (bounds memory; >= one row).
        progress: show tqdm progress bars.
    """

    def __init__(self, model: Transformer, tokenizer: Tokenizer, batch_tokens: int = 8192,
                 progress: bool = False, share_context: bool = True):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_tokens = batch_tokens
        self.device = next(model.parameters()).device
        self.truncated = 0
        """Requests whose context was cut from the left to fit the model's context (a count
        that only grows; the runner reports it per task)."""
        # Both fast paths stop at Transformer.hidden_states (the packed one with a mask) and
        # apply the output layer only where a prediction is scored; a probe checks them
        # against Transformer.forward, which a subclass may have changed.
        self.plain_forward = False
        self.share_context = share_context
        self.progress = False  # no bar for the probe
        self.desc = "scoring"
        """The progress bar's label (the runner sets it to the task and shot count)."""
        self._check_against_forward(share_context)
        self.progress = progress

    def _check_against_forward(self, share_context: bool) -> None:
        """Score a probe with the fast paths and with ``Transformer.forward``; where they
        disagree (a model whose ``forward`` is not ``hidden_states`` + ``output``), fall back to
        the plain forward pass (full logits, every choice separately) and warn."""
        v = self.model.config.vocab_size
        ctx, conts = [1 % v, 2 % v, 3 % v], [[4 % v, 5 % v], [6 % v, 7 % v, 8 % v]]
        with torch.no_grad():
            ref = [_reference_loglik(self.model, ctx, c) for c in conts]
        for share in (False, True) if share_context else (False,):
            self.share_context = share
            got = [ll for ll, _ in self.score_groups([Group(ctx, conts)])[0]]
            if any(abs(a - b) > 1e-3 * max(1.0, abs(b)) for a, b in zip(got, ref, strict=True)):
                self.plain_forward = not share
                self.share_context = False
                warnings.warn("fast scoring disagrees with Transformer.forward; using the plain "
                              "forward pass (slower)", stacklevel=3)
                return
        self.share_context = share_context

    @property
    def max_len(self) -> int:
        return self.model.config.max_seq_len

    # ------------------------------------------------------------------ encoding

    def encode_group(self, context: str, continuations: list[str]) -> Group:
        """Tokenize one context and its continuations (lm-evaluation-harness convention)."""
        return encode_group(self.tokenizer, context, continuations)

    # ------------------------------------------------------------------ log-likelihoods

    def loglikelihood_groups(self, groups: list[tuple[str, list[str]]]) -> list[list[LogLik]]:
        """Per group ``(context, [continuation, ...])``, the (log-likelihood, is_greedy) of each
        continuation given the context."""
        return self.score_groups([self.encode_group(c, conts) for c, conts in groups])

    def loglikelihood(self, pairs: list[tuple[str, str]]) -> list[LogLik]:
        """Per ``(context, continuation)`` pair; consecutive pairs with one context share it."""
        groups: list[tuple[str, list[str]]] = []
        for context, continuation in pairs:
            if groups and groups[-1][0] == context:
                groups[-1][1].append(continuation)
            else:
                groups.append((context, [continuation]))
        return [r for group in self.loglikelihood_groups(groups) for r in group]

    def score_groups(self, groups: list[Group]) -> list[list[LogLik]]:
        """Token-level scoring of groups; see :class:`Group`."""
        rows = [row for g, group in enumerate(groups) for row in self._pack(g, group)]
        out: list[list[LogLik | None]] = [[None] * len(g.continuations) for g in groups]
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i].tokens))
        batches = self._batches([rows[i] for i in order])
        for batch in tqdm(batches, desc=self.desc, unit="batch", disable=not self.progress):
            for row, results in zip(batch, self._run(batch), strict=True):
                for (branch, _, _), result in zip(row.branches, results, strict=True):
                    out[row.group][branch] = result
        return out  # type: ignore[return-value]

    def _pack(self, g: int, group: Group) -> list[_Row]:
        """One row for the group, or one truncated row per branch when it does not fit."""
        conts = group.continuations
        if not conts:
            return []
        if any(not c for c in conts):
            raise ScalinglabError("cannot score an empty continuation (it has no tokens)")
        fits = len(group.context) + max(len(c) for c in conts) - 1 <= self.max_len
        if fits and (self.share_context or len(conts) == 1):
            return [_pack_row(g, group.context, list(enumerate(conts)))]
        rows = []  # one row per branch, truncated from the left where needed
        self.truncated += 0 if fits else 1
        for b, cont in enumerate(conts):
            if len(cont) > self.max_len:
                raise ScalinglabError(
                    f"a continuation of {len(cont)} tokens is longer than the model's context "
                    f"({self.max_len}); use a rolling log-likelihood task instead"
                )
            # Keep the last max_len + 1 tokens of context + continuation (left truncation).
            whole = (group.context + cont)[-(self.max_len + 1):]
            rows.append(_pack_row(g, whole[: len(whole) - len(cont)], [(b, cont)]))
        return rows

    def _batches(self, rows: list[_Row]) -> list[list[_Row]]:
        """Rows sorted longest first, so a batch's first row sets its padded length."""
        batches: list[list[_Row]] = []
        for row in rows:
            last = batches[-1] if batches else None
            if last and len(last[0].tokens) * (len(last) + 1) <= self.batch_tokens:
                last.append(row)
            else:
                batches.append([row])
        return batches

    @torch.no_grad()
    def _run(self, batch: list[_Row]) -> list[list[LogLik]]:
        t = len(batch[0].tokens)
        tokens = torch.zeros(len(batch), t, dtype=torch.long)
        positions = torch.zeros(len(batch), t, dtype=torch.long)
        segments = torch.full((len(batch), t), -1, dtype=torch.long)  # -1: padding
        for i, row in enumerate(batch):
            n = len(row.tokens)
            tokens[i, :n] = torch.tensor(row.tokens)
            positions[i, :n] = torch.tensor(row.positions)
            segments[i, :n] = torch.tensor(row.segments)
        tokens = tokens.to(self.device)
        if self.plain_forward:
            return _gather_logliks(torch.nn.Identity(), self.model(tokens), batch)
        if all(len(row.branches) == 1 for row in batch):
            # Plain causal rows: right padding cannot affect earlier positions.
            hidden = self.model.hidden_states(tokens)  # (B, T, D)
        else:
            mask = prefix_sharing_mask(positions.to(self.device), segments.to(self.device))
            hidden = self.model.hidden_states(tokens, mask)  # (B, T, D)
        return _gather_logliks(self.model.output, hidden, batch)

    # ------------------------------------------------------------------ rolling

    def rolling_loglikelihood(self, texts: list[str], context_len: int = 1) -> list[float]:
        """Log-likelihood of each whole text, conditioned on end-of-text, over windows of the
        model's context (see :func:`rolling_windows`)."""
        groups, owner = [], []
        for i, text in enumerate(texts):
            windows = rolling_windows(self.tokenizer.encode(text), self.tokenizer.eot_id,
                                      self.max_len, context_len)
            for ctx, cont in windows:
                groups.append(Group(ctx, [cont]))
                owner.append(i)
        totals = [0.0] * len(texts)
        for i, (result,) in zip(owner, self.score_groups(groups), strict=True):
            totals[i] += result[0]
        return totals

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate(self, context: str, until: list[str] | None = None, max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0) -> str:
        """Continue ``context`` until a stop sequence, end-of-text or ``max_new_tokens``.

        Greedy when ``temperature`` is 0, else sampled from softmax(logits / temperature) with
        a generator seeded by ``seed`` (the same seed gives the same text). The returned text
        stops before the first stop sequence.
        """
        cfg = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        # sample_continuations keeps the prompt's last max_len - 1 tokens: count the cut
        self.truncated += len(self.tokenizer.encode(context)) > self.max_len - 1
        out = sample_continuations(self.model, self.tokenizer, context, cfg, until=until)[0]
        return _cut(self.tokenizer.decode(out), until or [])


def encode_group(tokenizer: Tokenizer, context: str, continuations: list[str]) -> Group:
    """Tokenize one context and its continuations the way lm-evaluation-harness does (see the
    module docstring); fine-tuning encodes its (prompt, answer) pairs with it too, so a model
    is trained on exactly the tokens it is scored on."""
    if context == "":
        return Group([tokenizer.eot_id], [tokenizer.encode(c) for c in continuations])
    n_spaces = len(context) - len(context.rstrip())
    moved = context[len(context) - n_spaces:]
    context = context[: len(context) - n_spaces]
    ctx = tokenizer.encode(context)
    conts = [_continuation(tokenizer, ctx, context, moved + c) for c in continuations]
    # A whitespace-only context leaves nothing to condition on: use end-of-text instead.
    return Group(ctx or [tokenizer.eot_id], conts)


def _continuation(tokenizer: Tokenizer, ctx: list[int], context: str,
                  continuation: str) -> list[int]:
    """The continuation's tokens as they follow the context in ``encode(context +
    continuation)``; when a merge crosses the boundary (multi-word tokenizers) those would
    cover context text too, so the continuation is then encoded on its own."""
    whole = tokenizer.encode(context + continuation)
    if whole[: len(ctx)] == ctx:
        return whole[len(ctx):]
    return tokenizer.encode(continuation)


def _reference_loglik(model: Transformer, context: list[int], cont: list[int]) -> float:
    """One request through ``Transformer.forward`` itself (the probe's reference)."""
    logp = model(torch.tensor([context + cont[:-1]], device=next(model.parameters()).device))
    logp = logp[0, -len(cont):].float().log_softmax(-1)  # (len(cont), V)
    return float(logp.gather(-1, torch.tensor(cont, device=logp.device)[:, None]).sum())


def _cut(text: str, until: list[str]) -> str:
    cuts = [text.index(s) for s in until if s and s in text]
    return text[: min(cuts)] if cuts else text


def _pack_row(g: int, context: list[int], branches: list[tuple[int, list[int]]]) -> _Row:
    """Lay out ``context`` then each branch's inputs (its tokens but the last)."""
    lc = len(context)
    tokens, positions, segments = list(context), list(range(lc)), [0] * lc
    placed = []
    for b, cont in branches:
        start = len(tokens)
        tokens += cont[:-1]
        positions += range(lc, lc + len(cont) - 1)
        segments += [b + 1] * (len(cont) - 1)
        # The first continuation token is predicted from the last context token.
        placed.append((b, [lc - 1] + list(range(start, start + len(cont) - 1)), cont))
    return _Row(tokens, positions, segments, g, placed)


def _gather_logliks(head: torch.nn.Module, hidden: torch.Tensor,
                    batch: list[_Row]) -> list[list[LogLik]]:
    """Sum the target log-probabilities of each branch; greedy = every target is the argmax.
    ``head`` (the output layer) is applied only at the N predicting positions."""
    rows, cols, targets = [], [], []
    for i, row in enumerate(batch):
        for _, where, tgt in row.branches:
            rows += [i] * len(where)
            cols += where
            targets += tgt
    picked = head(hidden[torch.tensor(rows), torch.tensor(cols)]).float()  # (N, V)
    logp = picked.log_softmax(-1)
    target = torch.tensor(targets, device=hidden.device)
    tok_ll = logp.gather(-1, target[:, None])[:, 0].double().cpu()
    greedy = (logp.argmax(-1) == target).cpu()
    out, k = [], 0
    for row in batch:
        results = []
        for _, where, _ in row.branches:
            n = len(where)
            results.append((float(tok_ll[k:k + n].sum()), bool(greedy[k:k + n].all())))
            k += n
        out.append(results)
    return out


def rolling_windows(tokens: list[int], prefix: int, max_len: int,
                    context_len: int = 1) -> list[tuple[list[int], list[int]]]:
    """Split a token list into (context, continuation) windows that predict each token once.

    The first window predicts the first ``max_len`` tokens after ``prefix``; each later window
    is a full ``max_len`` input that predicts up to ``max_len - context_len + 1`` new tokens, so
    ``context_len`` = 1 gives disjoint chunks (lm-evaluation-harness's default) and a larger
    one gives sliding windows where every prediction sees at least ``context_len`` tokens.
    """
    if not 1 <= context_len <= max_len:
        raise ScalinglabError(f"context_len {context_len} must be in 1..{max_len}")
    if not tokens:
        return []
    pred_len = max_len - context_len + 1
    first = min(max_len, len(tokens))
    windows = [([prefix], tokens[:first])]
    done = first
    while done < len(tokens):
        n = min(len(tokens) - done, pred_len)
        end = done + n
        inputs = tokens[max(0, end - max_len - 1): end - 1]
        windows.append((inputs[: len(inputs) - (n - 1)], tokens[end - n: end]))
        done = end
    return windows
