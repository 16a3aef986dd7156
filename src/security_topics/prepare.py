"""Validate the raw data, report duplicates, and write the seeded train/validation/test split.

`python -m security_topics.prepare` (a DVC stage); training calls `load_splits`, which
prepares again only when the raw data or the split settings changed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from security_topics.data import (
    SPLITS,
    Example,
    find_duplicates,
    fingerprint,
    in_articles,
    label_counts,
    read_articles,
    read_sentences,
    split_examples,
    write_jsonl,
)
from security_topics.labels import LabelSet

log = logging.getLogger(__name__)

REPORT = "prepare_report.json"


def _settings(data_cfg: DictConfig) -> dict[str, Any]:
    return {
        "labels": list(data_cfg.labels),
        "split": dict(data_cfg.split),
        "split_seed": int(data_cfg.split_seed),
        "fingerprint": fingerprint([p for p in (data_cfg.sentences, data_cfg.articles) if p]),
    }


def prepare(data_cfg: DictConfig) -> dict[str, Any]:
    """Validate, de-duplicate and split; write the splits and a report next to them."""
    labels = LabelSet.of(data_cfg.labels)
    examples = read_sentences(data_cfg.sentences, labels)
    duplicates = find_duplicates(examples)
    dropped = {id(e) for group in duplicates for e in group[1:]}
    for group in duplicates:
        log.warning(
            "duplicate after normalisation: lines %s of %s (kept line %d)%s",
            [e.line for e in group],
            data_cfg.sentences,
            group[0].line,
            "; their labels differ" if len({e.labels for e in group}) > 1 else "",
        )
    articles = read_articles(data_cfg.articles, labels) if data_cfg.articles else []
    leaked = {id(e) for e in in_articles(examples, articles)}
    if leaked:
        log.warning("dropping %d sentence(s) that also stand in the articles (evaluation only)", len(leaked))
    unique = [e for e in examples if id(e) not in dropped | leaked]
    splits = split_examples(unique, dict(data_cfg.split), int(data_cfg.split_seed))
    out_dir = Path(data_cfg.processed_dir)
    for name in SPLITS:
        write_jsonl(out_dir / f"{name}.jsonl", splits[name])
    report: dict[str, Any] = {
        **_settings(data_cfg),
        "sentences": len(examples),
        "duplicates_dropped": len(dropped),
        "article_sentences_dropped": len(leaked),
        "counts": {name: {"rows": len(splits[name]), **label_counts(splits[name], labels)} for name in SPLITS},
        "articles": len(articles),
    }
    (out_dir / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    log.info("prepared %s: %s", out_dir, {n: len(splits[n]) for n in SPLITS})
    return report


def load_splits(data_cfg: DictConfig) -> dict[str, list[Example]]:
    """The prepared splits, re-prepared first if the raw data or split settings changed."""
    out_dir = Path(data_cfg.processed_dir)
    report_path = out_dir / REPORT
    current = _settings(data_cfg)
    stale = (
        not report_path.is_file()
        or not all((out_dir / f"{name}.jsonl").is_file() for name in SPLITS)
        or any(json.loads(report_path.read_text()).get(k) != v for k, v in current.items())
    )
    if stale:
        log.info("processed data missing or stale: preparing %s", out_dir)
        prepare(data_cfg)
    labels = LabelSet.of(data_cfg.labels)
    return {name: read_sentences(out_dir / f"{name}.jsonl", labels) for name in SPLITS}


@hydra.main(version_base="1.3", config_path="../../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    report = prepare(cfg.data)
    log.info("%s", OmegaConf.to_yaml(OmegaConf.create(report["counts"])))


if __name__ == "__main__":
    main()
