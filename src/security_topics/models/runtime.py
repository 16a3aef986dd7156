"""Process settings for scoring that every family shares, without importing torch."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_num_threads() -> int:
    """Half the usable CPUs, at least 1. Measured on a shared 2-core host (README: Fast CPU scoring):
    2 threads are faster on an idle host but collapse when a neighbour takes a core (p95 of a
    20-sentence article several times worse), 1 thread degrades gracefully."""
    return max(1, usable_cpus() // 2)
