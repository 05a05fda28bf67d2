"""Prompt/answer examples as a training data source for the pre-training ``Trainer``.

Each example is one row of ``seq_len`` inputs: the prompt's tokens then the answer's, right
padded with end-of-text. Its targets are the next tokens at the answer's positions and -1
(ignored by the loss) everywhere else, so the loss is that of the answer given the prompt.
A prompt too long for the context keeps its last tokens (counted in ``truncated``).

The interface is :class:`scalinglab.train.data.TokenWindows`'s: sample ``i`` of the run is
example ``perm_e[i mod n]`` of epoch ``e``, with ``perm_e`` seeded by (seed, e), so the data
position is one integer and resuming is exact.
"""

from __future__ import annotations

import numpy as np
import torch

from scalinglab.errors import ScalinglabError

IGNORE = -1
"""Target value the loss skips (``linear_cross_entropy`` ignores targets below 0)."""


class PromptAnswerRows:
    """Rows of (prompt tokens, answer tokens) pairs for the trainer.

    Args:
        pairs: per example, the prompt's and the answer's token ids (answer non-empty).
        seq_len: the model's context.
        pad_id: token that fills the rest of a row (its targets are ignored).
        vocab_size: ids of the tokenizer (checked against the model by the trainer).
    """

    def __init__(self, pairs: list[tuple[list[int], list[int]]], seq_len: int, pad_id: int,
                 vocab_size: int, seed: int = 0):
        if not pairs:
            raise ScalinglabError("fine-tuning: no examples in this split")
        self.seq_len, self.seed, self.vocab_size = seq_len, seed, vocab_size
        self.truncated = 0
        inputs = np.full((len(pairs), seq_len), pad_id, dtype=np.int64)
        targets = np.full((len(pairs), seq_len), IGNORE, dtype=np.int64)
        for i, (prompt, answer) in enumerate(pairs):
            if not answer or len(answer) > seq_len:
                raise ScalinglabError(f"fine-tuning: an answer of {len(answer)} tokens does not "
                                      f"fit the model's context of {seq_len}")
            whole = prompt + answer
            if len(whole) > seq_len + 1:
                self.truncated += 1
                whole = whole[-(seq_len + 1):]  # keep the end of the prompt and the answer
            n = len(whole) - 1
            inputs[i, :n] = whole[:-1]
            targets[i, n - len(answer):n] = answer  # (T,) only the answer is predicted
        self.inputs, self.targets = torch.from_numpy(inputs), torch.from_numpy(targets)
        self.num_windows = len(pairs)
        self._perm: tuple[int, np.ndarray] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(
                self.num_windows))
        return self._perm[1]

    def batch(self, first_sample: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``first_sample ..`` as (inputs (B, T), targets (B, T))."""
        rows = []
        for j in range(first_sample, first_sample + batch_size):
            epoch, pos = divmod(j, self.num_windows)
            rows.append(int(self._permutation(epoch)[pos]))
        return self.inputs[rows], self.targets[rows]

    def sequential_batches(self, batch_size: int, max_windows: int):
        """The first ``max_windows`` examples in order (the fixed validation set)."""
        n = min(max_windows, self.num_windows)
        for start in range(0, n, batch_size):
            end = min(n, start + batch_size)
            yield self.inputs[start:end], self.targets[start:end]
