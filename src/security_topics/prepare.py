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
    dedup_key,
    find_duplicates,
    fingerprint,
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
    unique = [e for e in examples if id(e) not in dropped]
    splits = split_examples(unique, dict(data_cfg.split), int(data_cfg.split_seed))
    out_dir = Path(data_cfg.processed_dir)
    for name in SPLITS:
        write_jsonl(out_dir / f"{name}.jsonl", splits[name])
    report: dict[str, Any] = {
        **_settings(data_cfg),
        "sentences": len(examples),
        "duplicates_dropped": len(dropped),
        "counts": {name: {"rows": len(splits[name]), **label_counts(splits[name], labels)} for name in SPLITS},
    }
    if data_cfg.articles:
        articles = read_articles(data_cfg.articles, labels)
        report["articles"] = {"rows": len(articles), **_article_counts(articles, labels)}
        report["article_sentences_in_training"] = _leaks(articles, splits["train"])
    (out_dir / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    log.info("prepared %s: %s", out_dir, {n: len(splits[n]) for n in SPLITS})
    return report


def _article_counts(articles: list, labels: LabelSet) -> dict[str, int]:
    counts = {name: sum(name in a.labels for a in articles) for name in labels.names}
    return {**counts, "none": sum(not a.labels for a in articles), "multi": sum(len(a.labels) > 1 for a in articles)}


def _leaks(articles: list, train: list[Example]) -> int:
    """Article sentences that also stand in the training split (articles are evaluation only)."""
    from security_topics.text import split_sentences

    train_keys = {dedup_key(e.text) for e in train}
    leaks = sum(dedup_key(s.text) in train_keys for a in articles for s in split_sentences(a.text))
    if leaks:
        log.warning("%d article sentence(s) also appear in the training split", leaks)
    return leaks


def load_splits(data_cfg: DictConfig) -> dict[str, list[Example]]:
    """The prepared splits, re-prepared first if the raw data or split settings changed."""
    out_dir = Path(data_cfg.processed_dir)
    report_path = out_dir / REPORT
    current = _settings(data_cfg)
    stale = not report_path.is_file() or any(
        json.loads(report_path.read_text()).get(k) != v for k, v in current.items()
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
