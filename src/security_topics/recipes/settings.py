"""Trainer settings as one checked object, built from `configs/trainer/*.yaml` by the entry point.

Checked on construction, so a bad value (`epochs=abc`, `batch_size=0`) fails before any work,
naming the config key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from security_topics.errors import ConfigError

MetricsLogger = Callable[[dict[str, float], int | None], None]


def no_logging(metrics: dict[str, float], step: int | None = None) -> None:
    """A metrics logger that drops everything (fits outside a tracked run)."""


@dataclass(frozen=True)
class TrainerSettings:
    device: str = "cpu"
    precision: str = "auto"  # bf16 where the device computes it natively, else fp32
    epochs: float = 4
    max_steps: int = -1
    batch_size: int = 16
    eval_batch_size: int = 64
    grad_accum: int = 1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    early_stopping_patience: int = 2
    log_every_steps: int = 20
    num_workers: int = 0
    seed: int = 42
    deterministic: bool = True
    resume: str | None = None
    save_optimizer: bool = False
    ddp_backend: str | None = None  # under torchrun: gloo (CPU) or nccl (GPU)
    sampling: str = "group_by_length"  # or random: batches of any length (the same batches at any world size)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kind = {"float": float, "int": int, "bool": bool, "str": str}.get(str(f.type))
            if kind is None:  # optional fields
                continue
            if kind is bool and not isinstance(value, bool):
                raise ConfigError(f"trainer.{f.name}: expected true or false, got {value!r}")
            if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"trainer.{f.name}: expected a number, got {value!r}")
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ConfigError(f"trainer.{f.name}: expected a whole number, got {value!r}")
        _check(
            self.precision in ("auto", "fp32", "bf16", "fp16"),
            "precision",
            "one of auto, fp32, bf16, fp16",
            self.precision,
        )
        _check(self.epochs > 0, "epochs", "> 0", self.epochs)
        _check(self.batch_size >= 1, "batch_size", "≥ 1", self.batch_size)
        _check(self.eval_batch_size >= 1, "eval_batch_size", "≥ 1", self.eval_batch_size)
        _check(self.grad_accum >= 1, "grad_accum", "≥ 1", self.grad_accum)
        _check(self.weight_decay >= 0, "weight_decay", "≥ 0", self.weight_decay)
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio", "in [0, 1)", self.warmup_ratio)
        _check(self.early_stopping_patience >= 1, "early_stopping_patience", "≥ 1", self.early_stopping_patience)
        _check(self.log_every_steps >= 1, "log_every_steps", "≥ 1", self.log_every_steps)
        _check(self.num_workers >= 0, "num_workers", "≥ 0", self.num_workers)
        _check(self.sampling in ("group_by_length", "random"), "sampling", "group_by_length or random", self.sampling)
        if self.ddp_backend not in (None, "gloo", "nccl"):
            raise ConfigError(f"trainer.ddp_backend must be gloo, nccl or null, got {self.ddp_backend!r}")
        if self.resume is not None and not Path(self.resume).is_dir():
            raise ConfigError(
                f"trainer.resume={self.resume}: no such folder (give a run's checkpoints/ or a checkpoint-N)"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainerSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"trainer: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


def _check(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"trainer.{key} must be {expected}, got {value!r}")
