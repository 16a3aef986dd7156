"""Process settings and batching for scoring that every encoder family shares, without importing torch."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

# Padded tokens per forward pass. Cost grows with count × longest, so length-sorted batches capped by
# tokens waste little on padding: a 20-sentence article (34 tokens on average, one of 96) scored
# 1.4× faster at 1024 than as one batch of 20 padded to 96 (benchmarks/backend_speed.py).
MAX_BATCH_TOKENS = 1024


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int = MAX_BATCH_TOKENS) -> list[np.ndarray]:
    """Indices of the texts in length order, cut into batches of at most `batch_size` texts and at
    most `max_tokens` padded tokens (a single longer text gets a batch of its own)."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    batches, start = [], 0
    for end in range(1, len(order)):
        count, longest = end + 1 - start, lengths[order[end]]  # the batch if order[end] joined it
        if count > batch_size or count * longest > max_tokens:
            batches.append(order[start:end])
            start = end
    if len(order):
        batches.append(order[start:])
    return batches


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cap_threads(num_threads: int | None) -> int | None:
    """At most the usable CPUs, with a warning: more threads than CPUs only contend, and 100,000
    of them hung a load for minutes. None (the library's or our default) stays None."""
    if num_threads is not None and num_threads > usable_cpus():
        log.warning("num_threads=%d: only %d CPUs are usable, using %d", num_threads, usable_cpus(), usable_cpus())
        return usable_cpus()
    return num_threads


def default_num_threads() -> int:
    """Half the usable CPUs, at least 1. Measured on a shared 2-core host (README: Fast CPU scoring):
    2 threads are faster on an idle host but collapse when a neighbour takes a core (p95 of a
    20-sentence article several times worse), 1 thread degrades gracefully."""
    return max(1, usable_cpus() // 2)
