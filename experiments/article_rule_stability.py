"""How stable is the learnt article threshold, and which fit of it is steadiest without losing F1?

Two seeds of the same data learnt sports_security article thresholds of 0.825 and 0.875 (#24): the
`shared` fit takes the argmax of a step-shaped F1 curve on ~240 validation articles, and a flat top
lets it jump. This compares fits of the same `max` rule (best sentence against a per-topic article
threshold), each cross-validated on the validation articles (time-grouped folds, as training does):

- `shared`: the fit until this comparison (one shared threshold, per-topic offsets shrunk by n / (n + 20));
- `shared_s60`, `one`: stronger shrinkage, and one threshold for every topic;
- `bagged`: `shared` averaged over 200 bootstrap resamples of the articles (`metrics.bagged_thresholds`),
  the `shared` article rule since this comparison;

and reports each fit's thresholds per model, how far they move between models, the written test and
`test_real` article F1 (reported only, never used to choose) and the seed article's topics.
`--sentences` does the same for the sentence thresholds on the validation sentences (their `shared` and
`per_topic` kinds, plain and bagged; sentence macro-F1 on the written test and `test_real`).

    python experiments/article_rule_stability.py models/pipeline models/clean-seed44 models/before
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from security_topics.aggregation import GRID
from security_topics.data import read_articles, read_sentences
from security_topics.decisions import time_groups
from security_topics.labels import LabelSet
from security_topics.metrics import (
    bagged_thresholds,
    compare_kinds,
    compute_metrics,
    cv_splits,
    shared_thresholds,
    tune_thresholds,
)
from security_topics.models import TopicModel, load_model
from security_topics.predictor import Predictor

PROCESSED = "data/processed/security_topics"
SEED_ARTICLE = "data/examples/seed-article.txt"


FITS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "one": lambda y, best: shared_thresholds(y, best, GRID, shrink=1e9),
    "shared_s60": lambda y, best: shared_thresholds(y, best, GRID, shrink=60),
    "shared": lambda y, best: shared_thresholds(y, best, GRID),
    "bagged": lambda y, best: bagged_thresholds(lambda a, b: shared_thresholds(a, b, GRID), y, best),
}


SENTENCE_FITS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "shared": shared_thresholds,
    "per_topic": tune_thresholds,
    "bagged_shared": lambda y, scores: bagged_thresholds(shared_thresholds, y, scores),
    "bagged_per_topic": lambda y, scores: bagged_thresholds(tune_thresholds, y, scores),
}


def scored_splits(
    cache: Path, score: Callable[[str], tuple], extra: Callable[[], dict] = dict
) -> dict[str, np.ndarray]:
    """Each split's scores and labels (`score(split)` gives scores, labels and the rows), the validation
    rows' time groups and `extra()`, computed once and kept in `cache`."""
    if cache.is_file():
        return dict(np.load(cache, allow_pickle=False))
    out: dict[str, np.ndarray] = {}
    for split in ("validation", "test", "test_real"):
        out[f"{split}_x"], out[f"{split}_y"], rows = score(split)
        if split == "validation":
            out["groups"] = np.array(time_groups(rows))
    out.update(extra())
    np.savez(cache, **out)
    return out


def sentence_scores(model: TopicModel, labels: LabelSet, cache: Path) -> dict[str, np.ndarray]:
    """Raw sentence scores and labels of the validation, written test and `test_real` sentences."""

    def score(split: str) -> tuple:
        sentences = read_sentences(f"{PROCESSED}/{split}.jsonl", labels)
        y = labels.encode_many([e.labels for e in sentences]).astype(int)
        return model.score([e.text for e in sentences]).probs, y, sentences

    return scored_splits(cache, score)


def features(predictor: Predictor, labels: LabelSet, cache: Path) -> dict[str, np.ndarray]:
    """Best-sentence scores (articles × topics) and labels of each split, and the seed article's."""

    def score(split: str) -> tuple:
        articles = read_articles(f"{PROCESSED}/articles_{split}.jsonl", labels)
        results = predictor.predict_articles([a.text for a in articles], titles=[a.title for a in articles])
        best = np.stack([predictor.article_features(r.sentences)[:, 0] for r in results])
        return best, labels.encode_many([a.labels for a in articles]).astype(int), articles

    def seed() -> dict[str, np.ndarray]:
        result = predictor.predict_article(Path(SEED_ARTICLE).read_text(encoding="utf-8"))
        return {"seed_x": predictor.article_features(result.sentences)[:, 0]}

    return scored_splits(cache, score, seed)


def cross_validate(fits: dict, x: np.ndarray, y: np.ndarray, groups: list[str]) -> dict[str, float]:
    """Each fit's macro-F1 on held-out folds of the validation rows (time-grouped, as training does)."""
    splits = cv_splits(len(x), groups, 5, 0)
    return compare_kinds(tuple(fits), splits, y, lambda kind, train, test: (x[test], fits[kind](y[train], x[train])))[1]


def compare_sentence_thresholds(path: str, cache: Path) -> None:
    model = load_model(path)
    labels = LabelSet.of(model.card.labels)
    f = sentence_scores(model, labels, cache)
    x, y = f["validation_x"], f["validation_y"]
    cv = cross_validate(SENTENCE_FITS, x, y, list(f["groups"]))
    print(f"\n{path} ({len(x)} validation sentences), sentence thresholds")
    for kind, fit in SENTENCE_FITS.items():
        t = fit(y, x)
        reported = [
            compute_metrics(f[f"{s}_y"], f[f"{s}_x"] >= t, labels.names)["macro_f1"] for s in ("test", "test_real")
        ]
        print(
            f"  {kind:16s} CV macro {cv[kind]:.3f}  thresholds {np.round(t, 3).tolist()}  "
            f"test/test_real macro {reported[0]:.3f}/{reported[1]:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--cache", default="experiments/runs/article_rule_stability")
    parser.add_argument("--sentences", action="store_true", help="compare the sentence threshold fits instead")
    args = parser.parse_args()
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    if args.sentences:
        for path in args.models:
            compare_sentence_thresholds(path, Path(args.cache) / (Path(path).name + "-sentences.npz"))
        return
    thresholds: dict[str, list[np.ndarray]] = {kind: [] for kind in FITS}
    for path in args.models:
        model = load_model(path)
        labels = LabelSet.of(model.card.labels)
        f = features(Predictor(model), labels, Path(args.cache) / (Path(path).name + ".npz"))
        x, y = f["validation_x"], f["validation_y"]
        cv = cross_validate(FITS, x, y, list(f["groups"]))
        print(f"\n{path} ({len(x)} validation articles); seed article best scores {np.round(f['seed_x'], 3).tolist()}")
        for kind, fit in FITS.items():
            t = fit(y, x)
            thresholds[kind].append(t)
            reported = [
                compute_metrics(f[f"{s}_y"], f[f"{s}_x"] >= t, labels.names)["micro_f1"] for s in ("test", "test_real")
            ]
            seed = [n for n, s, th in zip(labels.names, f["seed_x"], t) if s >= th]
            print(
                f"  {kind:10s} CV macro {cv[kind]:.3f}  thresholds {np.round(t, 3).tolist()}  "
                f"test/test_real micro {reported[0]:.3f}/{reported[1]:.3f}  seed article {len(seed)}/5"
            )
    if len(args.models) > 1:
        print("\nlargest move of a topic's threshold between the models:")
        for kind, ts in thresholds.items():
            spread = np.ptp(np.stack(ts), axis=0)
            print(f"  {kind:10s} max {spread.max():.3f}  mean {spread.mean():.3f}")


if __name__ == "__main__":
    main()
