"""Deterministic batches of (input, target) windows from token shards.

Each shard is cut into non-overlapping windows of ``seq_len + 1`` tokens. Sample number ``i``
(counted over the whole run) is window ``perm_e[i mod n]`` of epoch ``e = i // n``, where
``perm_e`` is a permutation seeded by (seed, e). The data position of a run is therefore one
integer, the number of samples consumed, which makes resuming exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scalinglab.data.shards import ShardError, open_split


class TokenWindows:
    """Windows of ``seq_len + 1`` tokens over all shards of one split."""

    def __init__(self, directory: str | Path, split: str, seq_len: int, seed: int = 0):
        self.shards = open_split(directory, split)
        self.seq_len = seq_len
        self.seed = seed
        self.vocab_size = int(self.shards[0].header["vocab_size"])
        self.eot_id = int(self.shards[0].header["eot_id"])
        counts = [max(0, (len(s.tokens) - 1) // seq_len) for s in self.shards]
        self.num_windows = int(sum(counts))
        if self.num_windows == 0:
            total = sum(len(s.tokens) for s in self.shards)
            raise ShardError(
                f"{directory}: {split} split has {total} tokens, fewer than one window of "
                f"seq_len + 1 = {seq_len + 1}"
            )
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self._perm_cache: tuple[int, np.ndarray] | None = None

    @property
    def num_tokens(self) -> int:
        return self.num_windows * self.seq_len

    def window(self, w: int) -> np.ndarray:
        """Window ``w`` (0 <= w < num_windows): ``seq_len + 1`` consecutive tokens."""
        shard = int(np.searchsorted(self._starts, w, side="right") - 1)
        offset = (w - self._starts[shard]) * self.seq_len
        return np.asarray(self.shards[shard].tokens[offset: offset + self.seq_len + 1])

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm_cache = (epoch, rng.permutation(self.num_windows))
        return self._perm_cache[1]

    def sample_window(self, i: int) -> int:
        """Which window the ``i``-th sample of the run reads (shuffled, epoch after epoch)."""
        epoch, pos = divmod(i, self.num_windows)
        return int(self._permutation(epoch)[pos])

    def batch(self, first_sample: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``first_sample .. first_sample + batch_size - 1`` as (inputs, targets)."""
        rows = [self.window(self.sample_window(first_sample + j)) for j in range(batch_size)]
        return _to_tensors(np.stack(rows))

    def sequential_batches(self, batch_size: int, max_windows: int):
        """The first ``max_windows`` windows in order, for a fixed validation set."""
        n = min(max_windows, self.num_windows)
        for start in range(0, n, batch_size):
            rows = [self.window(w) for w in range(start, min(n, start + batch_size))]
            yield _to_tensors(np.stack(rows))


def _to_tensors(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.from_numpy(rows.astype(np.int64))  # (B, T+1)
    return t[:, :-1], t[:, 1:]
