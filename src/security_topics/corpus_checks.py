"""Quality gates for the labelled corpus (run by `python -m security_topics.quality`).

Schema, duplicates and near-duplicates, counts and sub-theme minimums, length statistics,
and a cross-validated baseline check that the data is learnable but not templated.
Minimums live in the data config (`data.quality`); every failed gate is listed at once.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from security_topics.corpus import CorpusSpec
from security_topics.data import Article, Example, read_articles, read_sentences
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics
from security_topics.models.card import TopicModel
from security_topics.splits import find_duplicates, in_articles, split_articles, split_examples
from security_topics.text import normalize, split_sentences

Fit = Callable[[Sequence[Example], LabelSet], TopicModel]

log = logging.getLogger(__name__)


@dataclass
class GateResults:
    """Statistics of the corpus and every gate it failed (empty: all passed)."""

    stats: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)


def char_ngrams(text: str, n: int = 5) -> set[str]:
    text = normalize(text)
    return {text[i : i + n] for i in range(max(len(text) - n + 1, 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicate_pairs(
    texts: Sequence[str], threshold: float = 0.8, neighbours: int = 5
) -> tuple[int, list[tuple[int, int, float]]]:
    """Nearest-neighbour candidates by character 5-gram overlap, confirmed by exact Jaccard.

    Returns the number of candidate pairs checked and those at or above `threshold`.
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.neighbors import NearestNeighbors

    clean = [normalize(t) for t in texts]
    vectors = CountVectorizer(analyzer="char", ngram_range=(5, 5), binary=True).fit_transform(clean)
    k = min(neighbours + 1, len(texts))
    _, index = NearestNeighbors(n_neighbors=k, metric="cosine").fit(vectors).kneighbors(vectors)
    grams = [char_ngrams(t) for t in texts]
    pairs = {(min(i, j), max(i, j)) for i, row in enumerate(index) for j in row if i != j}
    found = [(i, j, s) for i, j in sorted(pairs) if (s := jaccard(grams[i], grams[j])) >= threshold]
    return len(pairs), found


def cross_validated_macro_f1(
    examples: Sequence[Example], labels: LabelSet, fit: Fit, folds: int = 5, seed: int = 0
) -> float:
    """Mean test macro-F1 of a baseline (`fit`, usually the TF-IDF recipe) over seeded random folds."""
    order = np.random.default_rng(seed).permutation(len(examples))
    fold_of = np.empty(len(examples), dtype=int)
    fold_of[order] = np.arange(len(examples)) % folds
    scores = []
    for fold in range(folds):
        train = [e for e, f in zip(examples, fold_of) if f != fold]
        test = [e for e, f in zip(examples, fold_of) if f == fold]
        model = fit(train, labels)
        predicted = model.score([e.text for e in test]).probs >= 0.5
        y_true = labels.encode_many([e.labels for e in test])
        scores.append(compute_metrics(y_true, predicted, labels.names)["macro_f1"])
    return float(np.mean(scores))


def check_corpus(spec: CorpusSpec, gates: dict[str, Any], fit: Fit) -> GateResults:
    """Run every gate on the raw corpus of `spec`; `fit` trains the baseline of the learnability gate."""
    labels = spec.label_set
    report = GateResults()
    examples = read_sentences(spec.sentences, labels)  # schema and label set: raises on the first error
    articles = read_articles(spec.articles, labels) if spec.articles else []
    _check_sentences(report, examples, labels, gates)
    _check_articles(report, articles, labels, gates)

    shared = len(in_articles(examples, articles))
    report.stats["article_sentences_in_corpus"] = shared
    report.check(
        not shared, f"{shared} article sentence(s) also stand in the sentence corpus (articles are evaluation only)"
    )

    duplicates = find_duplicates(examples)
    report.stats["exact_duplicates"] = sum(len(g) - 1 for g in duplicates)
    report.check(
        not duplicates,
        f"{len(duplicates)} exact duplicate group(s), first at lines {[e.line for e in (duplicates or [[]])[0]]}",
    )

    checked, near = near_duplicate_pairs([e.text for e in examples], float(gates["near_duplicate_jaccard"]))
    report.stats["near_duplicate_pairs"] = {"checked": checked, "found": len(near)}
    report.check(
        len(near) < float(gates["max_near_duplicate_share"]) * checked,
        f"{len(near)} of {checked} nearest-neighbour pairs are near-duplicates"
        f" (Jaccard ≥ {gates['near_duplicate_jaccard']})",
    )
    splits = split_examples(examples, labels, spec.split, spec.split_seed)
    split_of = {id(e): name for name, members in splits.items() for e in members}
    crossing = [
        (examples[i].line, examples[j].line)
        for i, j, _ in near
        if {split_of[id(examples[i])], split_of[id(examples[j])]} == {"train", "test"}
    ]
    report.stats["near_duplicates_across_train_test"] = len(crossing)
    report.check(not crossing, f"near-duplicates across train and test at lines {crossing[:5]}")

    held = split_articles(articles, labels, spec.article_validation, spec.split_seed)["validation"]
    in_validation = {name: sum(name in a.labels for a in held) for name in labels.names}
    report.stats["validation_articles_per_topic"] = in_validation
    minimum = gates["min_validation_articles_per_topic"]
    low_topics = {k: v for k, v in in_validation.items() if v < minimum}
    report.check(not low_topics, f"validation articles per topic {low_topics} < {minimum}: write more articles")

    if spec.real:
        mismatched = articles_not_union_of_sentences(
            read_sentences(spec.real.sentences, labels), read_articles(spec.real.articles, labels)
        )
        report.stats["real_articles_not_union_of_sentences"] = len(mismatched)
        report.check(
            not mismatched,
            f"{len(mismatched)} real article(s) in {spec.real.articles} whose labels are not the union of "
            f"their sentences' (the guide's definition of an article's labels): {mismatched[:5]}",
        )

    f1 = cross_validated_macro_f1(examples, labels, fit)
    report.stats["tfidf_cv_macro_f1"] = round(f1, 4)
    low, high = gates["tfidf_cv_macro_f1"]
    report.check(
        low <= f1 <= high, f"TF-IDF cross-validated macro-F1 {f1:.3f} outside [{low}, {high}] (≈1 means templated data)"
    )
    return report


def articles_not_union_of_sentences(sentences: Sequence[Example], articles: Sequence[Article]) -> list[str]:
    """Articles whose labels differ from the union of their labelled sentences' (matched by `pool_id`).

    The guide defines an article's labels as that union, so a sentence relabelled without its article
    (or the reverse) shows here. Articles without labelled sentences are not judged.
    """
    union: dict[str, set[str]] = defaultdict(set)
    for example in sentences:
        if example.meta.get("pool_id"):
            union[str(example.meta["pool_id"])].update(example.labels)
    return [
        f"{a.id} (line {a.line}): {sorted(a.labels)}, sentences {sorted(union[a.id])}"
        for a in articles
        if a.id in union and set(a.labels) != union[a.id]
    ]


def _check_sentences(report: GateResults, examples: list[Example], labels: LabelSet, gates: dict[str, Any]) -> None:
    counts = Counter(label for e in examples for label in e.labels)
    none = [e for e in examples if not e.labels]
    hard = [e for e in none if e.meta.get("subtheme") in set(gates["hard_negative_subthemes"])]
    multi = [e for e in examples if len(e.labels) > 1]
    lengths = np.array([len(e.text.split()) for e in examples])
    report.stats["sentences"] = {
        "rows": len(examples),
        **{name: counts[name] for name in labels.names},
        "none": len(none),
        "hard_negatives": len(hard),
        "multi_label": len(multi),
        "words": {
            "min": int(lengths.min()),
            "mean": round(float(lengths.mean()), 1),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
        },
    }
    for name in labels.names:
        report.check(
            counts[name] >= gates["min_per_topic"], f"{name}: {counts[name]} sentences < {gates['min_per_topic']}"
        )
        themes = Counter(e.meta.get("subtheme", "") for e in examples if e.labels == (name,))
        covered = sorted(t for t, n in themes.items() if n >= gates["min_per_subtheme"])
        report.stats.setdefault("subthemes", {})[name] = dict(sorted(themes.items()))
        report.check(
            len(covered) >= gates["min_subthemes"],
            f"{name}: {len(covered)} sub-themes with ≥{gates['min_per_subtheme']} sentences < {gates['min_subthemes']}",
        )
    report.check(len(none) >= gates["min_none"], f"{len(none)} sentences without topic < {gates['min_none']}")
    report.check(
        len(hard) >= gates["min_hard_negatives"], f"{len(hard)} hard negatives < {gates['min_hard_negatives']}"
    )
    report.check(
        len(multi) >= gates["min_multi_label"], f"{len(multi)} multi-label sentences < {gates['min_multi_label']}"
    )
    low, high = gates["words"]
    bad = [e.line for e, n in zip(examples, lengths) if not low <= n <= high]
    report.check(not bad, f"{len(bad)} sentence(s) outside {low}-{high} words, lines {bad[:10]}")


def _check_articles(report: GateResults, articles: list[Article], labels: LabelSet, gates: dict[str, Any]) -> None:
    sizes = np.array([len(split_sentences(a.text)) for a in articles])
    per_topic = {name: sum(name in a.labels for a in articles) for name in labels.names}
    none = sum(not a.labels for a in articles)
    multi = sum(len(a.labels) > 1 for a in articles)
    report.stats["articles"] = {
        "rows": len(articles),
        **per_topic,
        "none": none,
        "multi_label": multi,
        "sentences": {"min": int(sizes.min()), "mean": round(float(sizes.mean()), 1), "max": int(sizes.max())},
    }
    report.check(len(articles) >= gates["min_articles"], f"{len(articles)} articles < {gates['min_articles']}")
    for name, n in per_topic.items():
        report.check(n >= gates["min_articles_per_topic"], f"{name}: {n} articles < {gates['min_articles_per_topic']}")
    report.check(none >= gates["min_articles_none"], f"{none} articles without topic < {gates['min_articles_none']}")
    report.check(multi >= gates["min_articles_multi"], f"{multi} multi-topic articles < {gates['min_articles_multi']}")
    low, high = gates["article_sentences"]
    bad = [a.id for a, n in zip(articles, sizes) if not low <= n <= high]
    report.check(not bad, f"articles outside {low}-{high} sentences: {bad[:10]}")
