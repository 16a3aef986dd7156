"""The end of a sweep: which job did best on `optimized_metric`, printed and saved as
`best_job.yaml` in the sweep folder (Hydra's basic sweeper keeps no such record; Optuna's sweeper
writes `optimization_results.yaml` beside it, and this file reads the same for both).

Registered for every entry point in `configs/hydra/default.yaml`; a multirun whose jobs return no
number (evaluation, quality) ends without one.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

BEST_FILE = "best_job.yaml"


class BestJob(Callback):
    """Collects each job's returned metric and names the best when the multirun ends."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        value = job_return.return_value if job_return.status == JobStatus.COMPLETED else None
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        self.jobs.append(
            {
                "job": int(config.hydra.job.get("num") or 0),
                "overrides": list(job_return.overrides or []),
                "value": float(number) if number is not None and math.isfinite(number) else None,
                "status": job_return.status.name if job_return.status is not None else "UNKNOWN",
            }
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        best = best_job(self.jobs, _direction(config))
        if best is None:
            return
        metric = config.get("optimized_metric") or "the returned metric"
        summary = {"optimized_metric": metric, **best, "jobs": self.jobs}
        folder = Path(config.hydra.sweep.dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / BEST_FILE).write_text(OmegaConf.to_yaml(OmegaConf.create(summary)))
        scored = sum(job["value"] is not None for job in self.jobs)
        print(
            f"sweep: best job {best['job']} of {len(self.jobs)} ({scored} scored): {metric} = {best['value']:.4f} "
            f"with {' '.join(best['overrides']) or 'no overrides'}; all jobs in {folder / BEST_FILE}",
            flush=True,
        )


def best_job(jobs: list[dict[str, Any]], direction: str = "maximize") -> dict[str, Any] | None:
    """The job with the best value (the first of equals), or None where no job returned one."""
    scored = [job for job in jobs if job["value"] is not None]
    if not scored:
        return None
    pick = min if direction == "minimize" else max
    best = pick(scored, key=lambda job: job["value"])
    return {key: best[key] for key in ("job", "overrides", "value")}


def _direction(config: DictConfig) -> str:
    """The sweeper's direction where it has one (Optuna), else maximise (our metrics are F1)."""
    direction = OmegaConf.select(config, "hydra.sweeper.direction", default="maximize")
    return direction if direction in ("maximize", "minimize") else "maximize"
