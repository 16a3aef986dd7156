"""The prepared corpus: validate the raw files, drop duplicates and leaks, split, write and reload.

Written sentences split into train/validation/test; written articles (never trained on) into
validation (to learn the article rule) and test. Real news (`data.real`, hand-labelled excerpts of a
public corpus) splits by time: articles dated from `holdout_from` on, with every sentence of
them, are `test_real` and never used to fit anything; of the earlier real articles, a seeded share
(`rule_share`) joins the validation articles and their sentences the validation sentences, the
others give their sentences to training. Real sentences outside labelled articles split into train
and validation by article. A summary beside the splits records the settings and data fingerprint,
so `load_splits` prepares again only when the raw data or the split settings changed.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from security_topics.data import Article, Example, fingerprint, label_counts, read_articles, read_sentences, write_jsonl
from security_topics.errors import ConfigError, DataError
from security_topics.labels import LabelSet
from security_topics.splits import (
    ARTICLE_SPLITS,
    REAL,
    SPLITS,
    find_duplicates,
    in_articles,
    split_articles,
    split_examples,
    split_real,
)
from security_topics.text import dedup_key

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
    real: RealSpec | None = None

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
            real=RealSpec.from_mapping(values["real"]) if values.get("real") else None,
        )

    @property
    def files(self) -> list[str]:
        """Every raw data file the corpus reads."""
        real = [self.real.sentences, self.real.articles] if self.real else []
        if self.real and self.real.sides and Path(self.real.sides).is_file():
            real.append(self.real.sides)
        return [p for p in (self.sentences, self.articles, *real) if p]

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
            "real": None
            if self.real is None
            else {"holdout_from": self.real.holdout_from, "rule_share": self.real.rule_share},
            "fingerprint": fingerprint(self.files),
        }


@dataclass(frozen=True)
class RealSpec:
    """Hand-labelled real news (`data.real`): its files, where the held-out period starts, and the
    share of earlier real articles that validate (thresholds, calibration, the article rule);
    `train_repeat` is how often each real training sentence is shown to the model per epoch;
    `sides` pins earlier articles to train or validation (`read_article_sides`)."""

    sentences: str
    articles: str
    holdout_from: str
    rule_share: float = 0.5
    train_repeat: int = 1
    sides: str | None = None

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> RealSpec:
        return cls(
            sentences=str(values["sentences"]),
            articles=str(values["articles"]),
            holdout_from=str(values["holdout_from"]),
            rule_share=float(values.get("rule_share", 0.5)),
            train_repeat=_positive_int(values.get("train_repeat", 1), "data.real.train_repeat"),
            sides=str(values["sides"]) if values.get("sides") else None,
        )


SIDES_FILE = "real_article_sides.csv"
SIDES = ("train", "validation")


def read_article_sides(path: str | Path, earlier: Sequence[Article]) -> dict[str, str]:
    """Pinned sides of earlier real articles: a CSV `id,split` (split: train or validation), as
    `prepare` writes it (SIDES_FILE in the processed folder). With it, relabelling an article moves
    no other one between training and validation; articles it does not list are split among
    themselves. Every row must name an earlier labelled article, once."""
    known = {a.id for a in earlier}
    sides: dict[str, str] = {}
    with Path(path).open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f)
        if rows.fieldnames != ["id", "split"]:
            raise DataError(path, 1, "header", f"expected the columns id,split, got {rows.fieldnames}")
        for line, row in enumerate(rows, start=2):
            if row["id"] not in known:
                message = f"{row['id']!r} is no labelled real article dated before the held-out period"
                raise DataError(path, line, "id", message)
            if row["id"] in sides:
                raise DataError(path, line, "id", f"{row['id']!r} is listed twice")
            if row["split"] not in SIDES:
                raise DataError(path, line, "split", f"must be one of {SIDES}, got {row['split']!r}")
            sides[row["id"]] = row["split"]
    return sides


def write_article_sides(path: Path, sides: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "split"])
        writer.writerows(sorted(sides.items()))


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a whole number of at least 1, got {value!r}")
    return value


def training_sentences(spec: CorpusSpec, train: list[Example]) -> list[Example]:
    """The rows a model is fitted on: the train split, each real-news row `data.real.train_repeat`
    times (real copy is the register we are judged on, and a third of the rows)."""
    repeat = spec.real.train_repeat if spec.real else 1
    if repeat == 1:
        return train
    return [e for e in train for _ in range(repeat if e.is_real else 1)]


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
    real_summary = {}
    if spec.real:
        real_summary = _add_real(spec, labels, sentence_splits, article_splits)
    out_dir = Path(spec.processed_dir)
    for name in split_names(spec)[0]:
        write_jsonl(out_dir / f"{name}.jsonl", sentence_splits[name])
    for name in split_names(spec)[1]:
        write_jsonl(out_dir / f"articles_{name}.jsonl", article_splits[name])
    summary: dict[str, Any] = {
        **spec.settings(),
        "sentences": len(examples),
        "duplicates_dropped": len(dropped),
        "article_sentences_dropped": len(leaked),
        "counts": {name: {"rows": len(v), **label_counts(v, labels)} for name, v in sentence_splits.items()},
        "articles": {name: {"rows": len(v), **label_counts(v, labels)} for name, v in article_splits.items()},
        **real_summary,
    }
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    log.info(
        "prepared %s: sentences %s, articles %s",
        out_dir,
        {n: len(v) for n, v in sentence_splits.items()},
        {n: len(v) for n, v in article_splits.items()},
    )
    return summary


def split_names(spec: CorpusSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The sentence and article splits a corpus has: `test_real` too where it holds real news."""
    if spec.real:
        return (*SPLITS, REAL), (*ARTICLE_SPLITS, REAL)
    return SPLITS, ARTICLE_SPLITS


def _add_real(
    spec: CorpusSpec, labels: LabelSet, sentences: dict[str, list[Example]], articles: dict[str, list[Article]]
) -> dict[str, Any]:
    """Split the real news by time and add it to the written splits (see the module doc)."""
    real = spec.real
    real_sentences = read_sentences(real.sentences, labels)
    real_articles = read_articles(real.articles, labels)
    for article in real_articles:
        if not isinstance(article.meta.get("date"), str):
            raise DataError(real.articles, article.line, "date", "real articles need a date (YYYY-MM-DD)")
    validation_share = spec.split["validation"] / max(spec.split["train"] + spec.split["validation"], 1e-9)
    pinned = None
    if real.sides:
        if not Path(real.sides).is_file():
            raise DataError(
                real.sides,
                0,
                "data.real.sides",
                f"no such file: copy {SIDES_FILE} from a prepared split there to pin "
                "its article sides, or set data.real.sides=null",
            )
        pinned = read_article_sides(real.sides, [a for a in real_articles if a.meta["date"] < real.holdout_from])
    parts = split_real(
        real_sentences,
        real_articles,
        labels,
        real.holdout_from,
        real.rule_share,
        validation_share,
        spec.split_seed,
        pinned=pinned,
    )
    write_article_sides(Path(spec.processed_dir) / SIDES_FILE, parts.sides)
    written = {dedup_key(e.text) for name in SPLITS for e in sentences[name]}
    held_out = {dedup_key(e.text) for e in parts.sentences[REAL]}
    dropped = 0
    for name in ("train", "validation"):
        # a line that also stands in the held-out period (a share prompt, a byline) stays there only
        kept, seen = [], set(written)
        for example in parts.sentences[name]:
            key = dedup_key(example.text)
            if key in held_out or key in seen:
                dropped += 1
                continue
            seen.add(key)
            kept.append(example)
        sentences[name] = sentences[name] + kept
    sentences[REAL] = parts.sentences[REAL]
    articles["validation"] = articles["validation"] + parts.articles["validation"]
    articles[REAL] = parts.articles[REAL]
    log.info(
        "real news: %d held-out articles (from %s), %d validation articles; %d repeated lines dropped",
        len(parts.articles[REAL]),
        real.holdout_from,
        len(parts.articles["validation"]),
        dropped,
    )
    return {
        "real_counts": {
            "holdout_from": real.holdout_from,
            "sentences": {n: len(v) for n, v in parts.sentences.items()},
            "articles": {n: len(v) for n, v in parts.articles.items()},
            "repeated_lines_dropped": dropped,
        }
    }


def load_splits(spec: CorpusSpec) -> Splits:
    """The prepared splits, prepared again first if the raw data or the split settings changed."""
    out_dir = Path(spec.processed_dir)
    sentence_names, article_names = split_names(spec)
    files = [out_dir / f"{n}.jsonl" for n in sentence_names] + [out_dir / f"articles_{n}.jsonl" for n in article_names]
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
        sentences={n: read_sentences(out_dir / f"{n}.jsonl", labels) for n in sentence_names},
        articles={n: read_articles(out_dir / f"articles_{n}.jsonl", labels) for n in article_names},
    )
