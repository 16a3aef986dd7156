"""Validate the raw data, report duplicates, and write the seeded splits: `python -m security_topics.prepare`.

A DVC stage; training prepares again by itself when the raw data or the split settings changed.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from security_topics.corpus import CorpusSpec, prepare
from security_topics.errors import exit_on_project_errors
from security_topics.overrides import check_run_overrides

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../../configs", config_name="train")
@exit_on_project_errors("prepare")
def main(cfg: DictConfig) -> None:
    check_run_overrides(cfg)
    summary = prepare(CorpusSpec.from_mapping(OmegaConf.to_container(cfg.data, resolve=True)))
    log.info(
        "%s", OmegaConf.to_yaml(OmegaConf.create({"sentences": summary["counts"], "articles": summary["articles"]}))
    )


if __name__ == "__main__":
    main()
