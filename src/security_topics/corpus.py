"""The prepared corpus: validate the raw files, drop duplicates and leaks, split, write and reload.

Sentences split into train/validation/test; articles (never trained on) into validation (to learn
the article rule) and test. A summary beside the splits records the settings and data fingerprint,
so `load_splits` prepares again only when the raw data or the split settings changed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from security_topics.data import Article, Example, fingerprint, label_counts, read_articles, read_sentences, write_jsonl
from security_topics.errors import DataError
from security_topics.labels import LabelSet
from security_topics.splits import ARTICLE_SPLITS, SPLITS, find_duplicates, in_articles, split_articles, split_examples

log = logging.getLogger(__name__)

SUMMARY = "split_summary.json"


@dataclass(frozen=True)
class CorpusSpec:
    """Where the raw data is, how to split it, and where the splits go (the `data` config group)."""

    labels: tuple[str, ...]
    sentences: str
    articles: str | None
    processed_dir: str
    split: dict[str, float]
    split_seed: int
    article_validation: float = 0.5

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> CorpusSpec:
        return cls(
            labels=tuple(values["labels"]),
            sentences=str(values["sentences"]),
            articles=str(values["articles"]) if values.get("articles") else None,
            processed_dir=str(values["processed_dir"]),
            split={k: float(v) for k, v in dict(values["split"]).items()},
            split_seed=int(values["split_seed"]),
            article_validation=float(values.get("article_validation", 0.5)),
        )

    @property
    def label_set(self) -> LabelSet:
        return LabelSet.of(self.labels)

    def settings(self) -> dict[str, Any]:
        """What the splits depend on: when any of it changes, they are prepared again."""
        return {
            "labels": list(self.labels),
            "split": self.split,
            "split_seed": self.split_seed,
            "article_validation": self.article_validation,
            "fingerprint": fingerprint([p for p in (self.sentences, self.articles) if p]),
        }


@dataclass
class Splits:
    sentences: dict[str, list[Example]]
    articles: dict[str, list[Article]]


def prepare(spec: CorpusSpec) -> dict[str, Any]:
    """Validate, de-duplicate and split; write the splits and their summary; return the summary."""
    labels = spec.label_set
    examples = read_sentences(spec.sentences, labels)
    duplicates = find_duplicates(examples)
    dropped = {id(e) for group in duplicates for e in group[1:]}
    for group in duplicates:
        log.warning(
            "duplicate after normalisation: lines %s of %s (kept line %d)%s",
            [e.line for e in group],
            spec.sentences,
            group[0].line,
            "; their labels differ" if len({e.labels for e in group}) > 1 else "",
        )
    articles = read_articles(spec.articles, labels) if spec.articles else []
    leaked = {id(e) for e in in_articles(examples, articles)}
    if leaked:
        log.warning("dropping %d sentence(s) that also stand in the articles (evaluation only)", len(leaked))
    unique = [e for e in examples if id(e) not in dropped | leaked]
    sentence_splits = split_examples(unique, labels, spec.split, spec.split_seed)
    in_train = label_counts(sentence_splits["train"], labels)
    missing = [name for name in labels.names if in_train[name] == 0]
    if missing:
        raise DataError(
            spec.sentences,
            0,
            "labels",
            f"topic(s) {missing} have no example in the training split: label sentences with them, "
            "or remove them from data.labels",
        )
    if spec.articles and not articles:
        log.warning("%s holds no article: no article rule is learnt and articles are not evaluated", spec.articles)
    article_splits = split_articles(articles, labels, spec.article_validation, spec.split_seed)
    out_dir = Path(spec.processed_dir)
    for name in SPLITS:
        write_jsonl(out_dir / f"{name}.jsonl", sentence_splits[name])
    for name in ARTICLE_SPLITS:
        write_jsonl(out_dir / f"articles_{name}.jsonl", article_splits[name])
    summary: dict[str, Any] = {
        **spec.settings(),
        "sentences": len(examples),
        "duplicates_dropped": len(dropped),
        "article_sentences_dropped": len(leaked),
        "counts": {name: {"rows": len(v), **label_counts(v, labels)} for name, v in sentence_splits.items()},
        "articles": {name: {"rows": len(v), **label_counts(v, labels)} for name, v in article_splits.items()},
    }
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    log.info(
        "prepared %s: sentences %s, articles %s",
        out_dir,
        {n: len(v) for n, v in sentence_splits.items()},
        {n: len(v) for n, v in article_splits.items()},
    )
    return summary


def load_splits(spec: CorpusSpec) -> Splits:
    """The prepared splits, prepared again first if the raw data or the split settings changed."""
    out_dir = Path(spec.processed_dir)
    files = [out_dir / f"{n}.jsonl" for n in SPLITS] + [out_dir / f"articles_{n}.jsonl" for n in ARTICLE_SPLITS]
    summary = out_dir / SUMMARY
    current = spec.settings()
    stale = (
        not summary.is_file()
        or not all(f.is_file() for f in files)
        or any(json.loads(summary.read_text()).get(k) != v for k, v in current.items())
    )
    if stale:
        log.info("processed data missing or stale: preparing %s", out_dir)
        prepare(spec)
    labels = spec.label_set
    return Splits(
        sentences={n: read_sentences(out_dir / f"{n}.jsonl", labels) for n in SPLITS},
        articles={n: read_articles(out_dir / f"articles_{n}.jsonl", labels) for n in ARTICLE_SPLITS},
    )
