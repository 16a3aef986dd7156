"""Where a run writes: Hydra's run directory under experiments/ (the working directory stays put)."""

from __future__ import annotations

from pathlib import Path


def hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise RuntimeError("no Hydra run directory: run as `python -m security_topics.<app>` or pass run_dir")
    return Path(HydraConfig.get().runtime.output_dir)
