"""Batch samplers: a seeded shuffle, no duplicate texts in a batch (in-batch-negative losses), P labels x K samples.

All are ``torch.utils.data.Sampler`` subclasses that yield lists of row indices (pass them as
``DataLoader(dataset, batch_sampler=...)``). The batches depend only on ``seed`` and the
epoch: call ``set_epoch(epoch)`` before each epoch for a new order. ``len(sampler)`` is the
number of batches of the current epoch.

Exact mid-epoch resume: the batches of an epoch are a pure function of (seed, epoch), so a
run resumed from a checkpoint calls ``set_epoch(epoch)`` and ``resume_at(n)``; the next pass
then starts at batch ``n`` of that epoch, i.e. yields exactly the batches the uninterrupted
run had left (``state_dict()`` holds seed, epoch and that position).

Several processes: Accelerate wraps a custom batch sampler in its ``BatchSamplerShard``
(process ``r`` of ``P`` takes global batches ``r, r + P, ...``), and that wrapper has neither
``set_epoch`` nor ``sampler``, so ``DataLoaderShard.set_epoch`` does not reach this sampler
(accelerate 1.15). The training loop therefore keeps a reference to it and calls
``set_epoch`` itself; a resumed pass skips ``P * n`` global batches for ``n`` per process.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Hashable, Iterator

import torch
from torch.utils.data import Sampler

from sbert_triplet.errors import ConfigError


def _generator(seed: int, epoch: int) -> torch.Generator:
    """A torch generator seeded from (seed, epoch): distinct epochs give unrelated orders."""
    digest = hashlib.sha256(f"{seed}:{epoch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class _EpochSampler(Sampler[list[int]]):
    """Shared epoch handling: the plan for (seed, epoch) is built once and cached."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        self.epoch = 0
        self._start = 0  # first batch of the next pass (set by resume_at, used once)
        self._plan: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (0-based) from now on."""
        self.epoch = int(epoch)

    def resume_at(self, batch: int) -> None:
        """Start the next pass (only that one) at batch ``batch`` of the current epoch, skipping the ones before.

        Raises:
            ValueError: ``batch`` < 0.
        """
        if batch < 0:
            raise ValueError(f"resume_at needs a batch index >= 0, got {batch}")
        self._start = int(batch)

    def state_dict(self) -> dict[str, int]:
        """``{"seed", "epoch", "start"}``: enough to rebuild the remaining batches of the epoch."""
        return {"seed": self.seed, "epoch": self.epoch, "start": self._start}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore :meth:`state_dict` (the seed must match: batches are a function of it).

        Raises:
            ConfigError: the state was saved with another seed.
        """
        if int(state["seed"]) != self.seed:
            raise ConfigError(f"sampler state has seed {state['seed']} but this sampler has seed {self.seed}: "
                              f"resume with --seed {state['seed']}")
        self.set_epoch(state["epoch"])
        self.resume_at(state["start"])

    def batches(self) -> list[list[int]]:
        """The current epoch's batches (lists of row indices)."""
        if self._plan is None or self._plan[0] != self.epoch:
            self._plan = (self.epoch, self._make_batches(_generator(self.seed, self.epoch)))
        return self._plan[1]

    def _make_batches(self, generator: torch.Generator) -> list[list[int]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[int]]:
        start, self._start = self._start, 0
        for batch in self.batches()[start:]:
            yield list(batch)

    def __len__(self) -> int:
        return len(self.batches())


class RandomBatchSampler(_EpochSampler):
    """A seeded shuffle of all rows cut into batches of ``batch_size``; each row once per epoch.

    The order of epoch ``e`` depends only on ``(seed, e)`` (not on a generator's history), so
    a resumed run draws the same batches as an uninterrupted one.

    Args:
        num_rows: rows in the dataset.
        batch_size: rows per batch, >= 1.
        seed: seed of the shuffle.
        drop_last: drop the final batch when it is smaller than ``batch_size``.

    Raises:
        ConfigError (a ValueError): ``batch_size`` < 1 or not an integer; ``seed`` not an integer.
    """

    def __init__(self, num_rows: int, batch_size: int, seed: int = 0, drop_last: bool = False) -> None:
        super().__init__(seed)
        self.num_rows = _check_int(num_rows, "num_rows", 0)
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        self.drop_last = bool(drop_last)  # read by Accelerate's batch-sampler sharding

    def _make_batches(self, generator: torch.Generator) -> list[list[int]]:
        order = torch.randperm(self.num_rows, generator=generator).tolist()
        batches = [order[i:i + self.batch_size] for i in range(0, self.num_rows, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches


class _Packer:
    """Greedy no-duplicates packing of rows into batches, each row placed once (see the sampler)."""

    PROBES = 8  # open batches, from the oldest, a row is tried against before the fallback

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.batches: list[list[int]] = []
        self.texts: list[set[str]] = []  # texts of each open batch (cleared once it is full)
        self.next_open: list[int] = []  # union-find: next_open[b] == b while batch b is not full
        self.last: dict[str, int] = {}  # text -> highest index of a batch holding it

    def _new_batch(self) -> None:
        self.next_open.append(len(self.batches))
        self.batches.append([])
        self.texts.append(set())

    def first_open(self, start: int) -> int:
        """Index of the first batch at or after ``start`` that is not full (created if needed)."""
        while len(self.batches) <= start:
            self._new_batch()
        root = start
        while self.next_open[root] != root:
            root = self.next_open[root]
            if root == len(self.batches):
                self._new_batch()
        while self.next_open[start] != root:  # path compression
            self.next_open[start], start = root, self.next_open[start]
        return root

    def target(self, texts: frozenset[str]) -> int:
        """The oldest of the first PROBES open batches without these texts, else the first after them."""
        batch = self.first_open(0)
        for _ in range(self.PROBES):
            if not self.batches[batch]:
                break  # an empty batch: nothing older fits, use the fallback
            if texts.isdisjoint(self.texts[batch]):
                return batch
            batch = self.first_open(batch + 1)
        return self.first_open(max((self.last.get(t, -1) for t in texts), default=-1) + 1)

    def place(self, row: int, texts: frozenset[str]) -> None:
        batch = self.target(texts)
        self.batches[batch].append(row)
        self.texts[batch] |= texts
        for text in texts:
            self.last[text] = max(self.last.get(text, -1), batch)
        if len(self.batches[batch]) == self.batch_size:
            self.next_open[batch] = batch + 1
            self.texts[batch] = set()


class NoDuplicatesBatchSampler(_EpochSampler):
    """Batches in which no two rows share a text in any column (no false in-batch negatives).

    Algorithm (one pass, linear): rows are visited once, in a shuffled order, and never moved
    after they are placed. A row goes into the oldest of the first 8 not-full batches that
    holds none of its texts; if none of those 8 fits, into the first not-full batch after
    the last batch holding any of its texts (``last[text]``, a hash map; later batches cannot
    hold the text). A union-find "next not-full batch" pointer with path compression finds
    not-full batches. Each row costs at most 8 set-disjointness checks and ``C`` hash-map
    look-ups (C = columns) plus near-constant finds: O(N * C) for N rows, never quadratic
    (the full first-fit scan would be quadratic when one text fills many batches).

    Every row is used exactly once per epoch. A row whose text already sits in the current
    batches is placed in a later one. Full batches are yielded first, in order, then the
    batches that stayed smaller than ``batch_size``: usually one final partial batch, more
    when duplicates are dense, e.g. one text in more rows than there are batches (a text in
    every row gives N batches of one row, the only batching without duplicates).
    ``drop_last=True`` drops every batch smaller than ``batch_size`` (their rows are unused
    this epoch). The number of batches can then vary a little between epochs.

    Args:
        row_texts: one tuple of texts per row, e.g. ``(anchor, positive, negative_1)``.
            Texts are compared by exact string equality (no normalisation).
        batch_size: rows per batch, >= 1.
        seed: seed of the shuffle; the same seed and epoch give the same batches.
        drop_last: drop batches smaller than ``batch_size``.

    Raises:
        ConfigError (a ValueError): ``batch_size`` < 1 or not an integer; ``seed`` not an integer.
    """

    def __init__(self, row_texts: list[tuple[str, ...]], batch_size: int, seed: int = 0,
                 drop_last: bool = False) -> None:
        super().__init__(seed)
        self.row_texts = [frozenset(texts) for texts in row_texts]
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        self.drop_last = bool(drop_last)

    def _make_batches(self, generator: torch.Generator) -> list[list[int]]:
        packer = _Packer(self.batch_size)
        for row in torch.randperm(len(self.row_texts), generator=generator).tolist():
            packer.place(row, self.row_texts[row])
        full = [b for b in packer.batches if len(b) == self.batch_size]
        partial = [] if self.drop_last else [b for b in packer.batches if 0 < len(b) < self.batch_size]
        return full + partial


class PKBatchSampler(_EpochSampler):
    """P labels x K samples per batch, for label-based losses (batch-hard / batch-all triplet).

    Each batch holds ``P = batch_size // K`` distinct labels with ``K`` rows each, so every
    row has ``K - 1`` positives and ``(P - 1) * K`` negatives in its batch.

    Per epoch: each label's rows are shuffled and cut into chunks of K. The number of batches
    is the largest ``m`` with ``sum_l min(chunks_l, m) >= m * P`` (enough distinct labels for m
    batches); ``m * P`` chunks are kept at random with at most ``m`` per label, laid out label
    by label and dealt round-robin into the m batches (a label's chunks land in different
    batches), then the batch order is shuffled.

    Leftovers (unused this epoch, a different random choice each epoch): the ``n_l mod K``
    rows of each label that do not fill a chunk, labels with fewer than K rows (never used),
    and chunks of over-represented labels beyond what ``m`` batches with P distinct labels
    can take. Every other row is used exactly once per epoch. ``len()`` is ``m`` for every epoch.

    Args:
        labels: one hashable label per row.
        batch_size: rows per batch, a multiple of K and >= 2 * K.
        samples_per_label: K, rows per label in a batch, >= 2.
        seed: seed of the shuffles; the same seed and epoch give the same batches.

    Raises:
        ConfigError (a ValueError): K < 2, ``batch_size`` not a multiple of K or < 2 * K.
        ValueError: fewer than P labels with at least K rows (no batch can be formed).

    References:
        Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss for Person Re-Identification".
    """

    def __init__(self, labels: list[Hashable], batch_size: int, samples_per_label: int = 2,
                 seed: int = 0) -> None:
        super().__init__(seed)
        k = _check_int(samples_per_label, "samples_per_label (K)", 2)
        batch_size = _check_int(batch_size, "batch_size", 1)
        if batch_size % k or batch_size < 2 * k:
            raise ConfigError(
                f"batch_size must be a multiple of samples_per_label K={k} and at least 2*K={2 * k} "
                f"(P = batch_size / K >= 2 labels per batch), got {batch_size}; e.g. batch_size={4 * k}"
            )
        self.batch_size, self.samples_per_label, self.labels_per_batch = batch_size, k, batch_size // k
        self.drop_last = True  # every batch is full (read by Accelerate's batch-sampler sharding)
        self.rows_by_label: dict[Hashable, list[int]] = defaultdict(list)
        for row, label in enumerate(labels):
            self.rows_by_label[label].append(row)
        chunks = [len(rows) // k for rows in self.rows_by_label.values()]
        usable = sum(1 for c in chunks if c > 0)
        if usable < self.labels_per_batch:
            raise ValueError(
                f"cannot form a P x K batch: a batch needs P={self.labels_per_batch} labels with K={k} rows "
                f"each, but only {usable} of {len(chunks)} labels have >= {k} rows ({len(labels)} rows). "
                "Lower batch_size or samples_per_label, or add rows to more labels"
            )
        self.num_batches = self._max_batches(chunks, self.labels_per_batch)

    @staticmethod
    def _max_batches(chunks: list[int], p: int) -> int:
        """Largest m with sum(min(c, m)) >= m * p (binary search; the condition is monotone)."""
        lo, hi = 1, sum(chunks) // p
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if sum(min(c, mid) for c in chunks) >= mid * p:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _make_batches(self, generator: torch.Generator) -> list[list[int]]:
        k, m = self.samples_per_label, self.num_batches
        groups = list(self.rows_by_label.values())
        chunks: list[list[int]] = []  # label by label, at most m chunks per label
        for g in torch.randperm(len(groups), generator=generator).tolist():
            rows = [groups[g][i] for i in torch.randperm(len(groups[g]), generator=generator).tolist()]
            chunks.extend(rows[c * k:(c + 1) * k] for c in range(min(len(rows) // k, m)))
        excess = len(chunks) - m * self.labels_per_batch  # chunks beyond m batches, dropped at random
        drop = set(torch.randperm(len(chunks), generator=generator)[:excess].tolist())
        kept = [chunk for i, chunk in enumerate(chunks) if i not in drop]  # m * P chunks
        batches: list[list[int]] = [[] for _ in range(m)]
        for i, chunk in enumerate(kept):  # a label's <= m consecutive chunks hit distinct batches
            batches[i % m].extend(chunk)
        return [batches[b] for b in torch.randperm(m, generator=generator).tolist()]

    def __len__(self) -> int:
        return self.num_batches
