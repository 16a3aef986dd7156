"""Multi-process training under `torchrun`: which process this is, and what the processes share.

torchrun starts one process per device with RANK/WORLD_SIZE in the environment; the Hugging Face
Trainer runs DistributedDataParallel from them. Everything else (thresholds, evaluation, saving,
MLflow) belongs to rank 0 alone, so the other ranks only train.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def init(backend: str) -> None:
    """Join the process group now (the Trainer reuses it), so ranks can agree before training."""
    if world_size() == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        if backend == "nccl":  # one GPU per process: collectives use the current device
            import torch

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)


def share_from_main(value: Any) -> Any:
    """Rank 0's `value` on every rank (a run folder chosen by rank 0's clock, say)."""
    if world_size() == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (it may write, e.g. prepare the splits); the others then read."""
    if world_size() == 1:
        yield
        return
    import torch.distributed as dist

    if not is_main():
        dist.barrier()
    yield
    if is_main():
        dist.barrier()


def finish() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
