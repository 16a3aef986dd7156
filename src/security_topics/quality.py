"""Check the labelled corpus against its quality gates: `python -m security_topics.quality`.

Prints the corpus statistics, then either "all quality gates passed" or every failed gate (exit 1).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from security_topics.corpus import CorpusSpec
from security_topics.corpus_checks import check_corpus
from security_topics.errors import exit_on_project_errors
from security_topics.overrides import check_run_overrides


@hydra.main(version_base="1.3", config_path="../../configs", config_name="quality")
@exit_on_project_errors("quality")
def main(cfg: DictConfig) -> None:
    check_run_overrides(cfg)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    baseline = hydra.utils.instantiate(cfg.model)
    results = check_corpus(
        CorpusSpec.from_mapping(data), data["quality"], lambda train, labels: baseline.fit(train, [], labels)
    )
    print(OmegaConf.to_yaml(OmegaConf.create(results.stats)))
    if results.failures:
        print("quality gates failed:\n- " + "\n- ".join(results.failures), file=sys.stderr)
        sys.exit(1)
    print("all quality gates passed")


if __name__ == "__main__":
    main()
