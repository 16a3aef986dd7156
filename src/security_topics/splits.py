"""Duplicate groups and seeded multi-label splits (iterative stratification), articles included.

Duplicates (texts equal after normalisation) form one unit, so they always land in one split.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

from security_topics.data import Article, Example
from security_topics.labels import LabelSet
from security_topics.text import dedup_key, split_sentences

SPLITS = ("train", "validation", "test")
ARTICLE_SPLITS = ("validation", "test")
REAL = "test_real"  # real news of the held-out period: sentences and articles

T = TypeVar("T", Example, Article)


def find_duplicates(examples: Sequence[Example]) -> list[list[Example]]:
    """Groups of examples whose texts are equal after normalisation (each group ≥ 2)."""
    return [group for group in _groups(examples) if len(group) > 1]


def _groups(examples: Sequence[Example]) -> list[list[Example]]:
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[dedup_key(example.text)].append(example)
    return list(groups.values())


def _indicator(label_lists: Sequence[Sequence[str]], labels: LabelSet) -> np.ndarray:
    """Multi-hot targets plus a `none` column, so texts without a topic are spread evenly too."""
    y = labels.encode_many(label_lists)
    return np.hstack([y, (y.sum(axis=1) == 0)[:, None].astype(np.float32)])


def _stratified_take(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the rest and of a `fraction` taken by iterative stratification."""
    everything = np.arange(len(y))
    if fraction <= 0 or len(y) < 2:
        return everything, everything[:0]
    if fraction >= 1:
        return everything[:0], everything
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    rest, taken = next(splitter.split(np.zeros((len(y), 1)), y))
    return np.sort(rest), np.sort(taken)


def _check_ratios(ratios: dict[str, float], names: Sequence[str]) -> None:
    total = sum(float(ratios[s]) for s in names)
    if not np.isclose(total, 1.0):
        raise ValueError(f"split ratios must sum to 1, got {total} from {ratios}")


def batch_order(name: str) -> list[str | int]:
    """Sort key of batch names, numbers by value: r9 before r10 (as strings, r10 sorts before r6)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def split_examples(
    examples: Sequence[Example], labels: LabelSet, ratios: dict[str, float], seed: int
) -> dict[str, list[Example]]:
    """Seeded train/validation/test split by iterative stratification over duplicate groups.

    Rows of each `batch` (a metadata column; empty for the first corpus) are split on their own, so
    adding a batch of rows never moves an earlier row to another split."""
    _check_ratios(ratios, SPLITS)
    batches: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        batches[str(example.meta.get("batch") or "")].append(example)
    out: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for name in sorted(batches, key=batch_order):
        for split, members in _split_batch(batches[name], labels, ratios, seed).items():
            out[split] += members
    for name in SPLITS:
        out[name].sort(key=lambda e: (e.line, e.id))
    return out


def _split_batch(
    examples: Sequence[Example], labels: LabelSet, ratios: dict[str, float], seed: int
) -> dict[str, list[Example]]:
    units = _groups(examples)
    y = _indicator([unit[0].labels for unit in units], labels)
    rest, test = _stratified_take(y, float(ratios["test"]), seed)
    share = float(ratios["validation"]) / max(1.0 - float(ratios["test"]), 1e-9)
    train, validation = _stratified_take(y[rest], share, seed + 1)
    chosen = {"train": rest[train], "validation": rest[validation], "test": test}
    return {name: [e for i in chosen[name] for e in units[i]] for name in SPLITS}


def split_articles(
    articles: Sequence[Article], labels: LabelSet, validation: float, seed: int
) -> dict[str, list[Article]]:
    """Seeded validation/test split of the articles, stratified by their topics (and none)."""
    y = _indicator([a.labels for a in articles], labels)
    test, val = _stratified_take(y, float(validation), seed)
    return {"validation": [articles[i] for i in val], "test": [articles[i] for i in test]}


def in_articles(examples: Sequence[Example], articles: Sequence[Article]) -> list[Example]:
    """The examples whose text is also a sentence of an article (after normalisation)."""
    keys = {dedup_key(s.text) for a in articles for s in split_sentences(a.text)}
    return [e for e in examples if dedup_key(e.text) in keys]


@dataclass
class RealParts:
    sentences: dict[str, list[Example]]
    articles: dict[str, list[Article]]
    sides: dict[str, str] = field(default_factory=dict)  # earlier article id -> train or validation


def split_real(
    sentences: Sequence[Example],
    articles: Sequence[Article],
    labels: LabelSet,
    holdout_from: str,
    rule_share: float,
    validation_share: float,
    seed: int,
    pinned: Mapping[str, str] | None = None,
) -> RealParts:
    """Real news by time. Articles dated `holdout_from` or later, and every sentence of them (by
    `pool_id`), are held out (`test_real`); a seeded, stratified `rule_share` of the earlier articles
    validates, with their sentences; the other earlier articles give their sentences to training.
    Sentences of no labelled article split into train and validation by their article, so that
    sentences of one article never sit on both sides; each `batch` of them on its own, as written rows.

    The stratified choice depends on the articles' labels, so relabelling one article can move others.
    `pinned` (article id -> train or validation, `RealParts.sides` of an earlier split) keeps each
    listed article on its side; only the unlisted earlier articles are chosen, among themselves."""
    pinned = pinned or {}
    held = [a for a in articles if a.meta["date"] >= holdout_from]
    earlier = [a for a in articles if a.meta["date"] < holdout_from]
    free = [a for a in earlier if a.id not in pinned]
    _, rule = _stratified_take(_indicator([a.labels for a in free], labels), rule_share, seed + 2)
    sides = {a.id: pinned.get(a.id, "train") for a in earlier}
    sides.update({free[i].id: "validation" for i in rule})
    validating = [a for a in earlier if sides[a.id] == "validation"]
    where = {a.id: REAL for a in held}
    where.update(sides)
    batches: dict[str, set[str]] = defaultdict(set)  # a later batch never moves an earlier row
    for example in sentences:
        batches[str(example.meta.get("batch") or "")].add(example.meta.get("pool_id", ""))
    for name in sorted(batches, key=batch_order):  # earlier batches place their articles first
        loose = sorted(batches[name] - set(where))  # an article already placed keeps its side
        order = np.random.default_rng(seed + 3).permutation(len(loose))
        n_validation = int(round(validation_share * len(loose)))
        for rank, i in enumerate(order):
            where[loose[i]] = "validation" if rank < n_validation else "train"
    out: dict[str, list[Example]] = {"train": [], "validation": [], REAL: []}
    for example in sentences:
        pool_id = example.meta.get("pool_id", "")
        date = str(example.meta.get("date", ""))
        out[REAL if date >= holdout_from else where[pool_id]].append(example)
    return RealParts(out, {"validation": validating, REAL: held}, sides)
