"""Write params.yaml: configs/dvc_params.yaml (the training config) composed and resolved, as DVC's Hydra support does.

`dvc exp run -S model=tfidf` rewrites params.yaml itself; after editing configs/ by hand,
`security-topics params` brings params.yaml (what `dvc repro` reads) back in line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def compose_params(overrides: Sequence[str] = (), config_dir: Path = CONFIG_DIR) -> str:
    """The YAML that DVC writes to params.yaml for these overrides (hydra node excluded)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose("dvc_params", overrides=list(overrides))
    OmegaConf.resolve(cfg)
    return OmegaConf.to_yaml(cfg)


def write_params(path: Path, overrides: Sequence[str] = ()) -> None:
    path.write_text(compose_params(overrides), encoding="utf-8")
