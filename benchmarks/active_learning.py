"""Does `suggest` pay? Active against random labelling, simulated on the labelled training split.

    python benchmarks/active_learning.py [--features tfidf|e5] [--seeds 5] [--batch 150] [--rounds 12]

Start from a seeded 20 % of the training split; each round add `--batch` sentences chosen from the rest
(active: the most uncertain at the validation-tuned thresholds, spread by k-means over sentence
vectors, as `security-topics suggest` chooses; random: a uniform draw), with their gold labels playing
the annotator; refit and score validation macro-F1. Reports, per strategy, the labels needed to reach
95 % of the full-data validation macro-F1 (mean and per seed) and logs the learning curves to MLflow
(experiment `security-topics-active-learning`) as a plot and a CSV.

Models: `tfidf` (the baseline recipe, refitted each round) or `e5` (frozen e5-small sentence vectors
with a logistic regression per topic: fine-tuning e5 a hundred times is out of reach on a CPU).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from security_topics import tracking
from security_topics.data import read_sentences
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics, tune_thresholds
from security_topics.models.card import Scores
from security_topics.recipes.tfidf import TfidfRecipe
from security_topics.suggest import dense_vectors, labels_to_reach, simulate

SHARES = (0.95, 0.98, 0.99)
LABELS = LabelSet.of(("counterterrorism", "narcotics", "cybersecurity", "aviation", "sports_security"))


class VectorModel:
    """A logistic regression per topic over fixed sentence vectors (looked up by text)."""

    def __init__(self, vectors: dict[str, np.ndarray], classifier: OneVsRestClassifier) -> None:
        self.vectors, self.classifier = vectors, classifier

    def score(self, texts: list[str], batch_size: int = 64) -> Scores:
        x = np.stack([self.vectors[t] for t in texts])
        return Scores(self.classifier.predict_proba(x), np.zeros(len(texts), dtype=bool))


def make_fit(features: str, train: list, validation: list, cache_dir: str):
    """`fit(examples)` for the simulation, and unit-length sentence vectors of `train` for diversity."""
    if features == "tfidf":
        recipe = TfidfRecipe()

        def fit(rows):
            return recipe.fit(rows, [], LABELS)

        vectors = dense_vectors(fit(train).embed([e.text for e in train]))
        return fit, vectors
    from security_topics.models.encoders import E5SmallEncoder, embed_frozen

    encoder, tokenizer = E5SmallEncoder(cache_dir=cache_dir).build([], 0)
    texts = [e.text for e in [*train, *validation]]
    table = dict(zip(texts, embed_frozen(encoder, tokenizer, texts, prefix="passage: ")))

    def fit_vectors(rows):
        x = np.stack([table[e.text] for e in rows])
        y = LABELS.encode_many([e.labels for e in rows])
        classifier = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000)
        return VectorModel(table, OneVsRestClassifier(classifier).fit(x, y))

    return fit_vectors, np.stack([table[e.text] for e in train])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", choices=("tfidf", "e5"), default="tfidf")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--splits", default="data/processed/security_topics")
    parser.add_argument("--cache-dir", default="models/cache")
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    train = read_sentences(Path(args.splits) / "train.jsonl", LABELS)
    validation = read_sentences(Path(args.splits) / "validation.jsonl", LABELS)
    fit, vectors = make_fit(args.features, train, validation, args.cache_dir)
    y_val = LABELS.encode_many([e.labels for e in validation])
    full = fit(train).score([e.text for e in validation]).probs
    full_f1 = compute_metrics(y_val, full >= tune_thresholds(y_val, full), LABELS.names)["macro_f1"]
    target = 0.95 * full_f1
    print(f"{len(train)} training sentences; full-data validation macro-F1 {full_f1:.4f}; target {target:.4f}")
    curves = []
    for seed in range(args.seeds):
        for strategy in ("active", "random"):
            curve = simulate(
                train, validation, LABELS, fit, vectors, strategy, seed, batch=args.batch, rounds=args.rounds
            )
            curves.append(curve)
            print(
                f"seed {seed} {strategy}: labels to target {labels_to_reach(curve, target)}; "
                f"F1 {' '.join(f'{f:.3f}' for f in curve.macro_f1)}"
            )
    needed = {s: [labels_to_reach(c, target) for c in curves if c.strategy == s] for s in ("active", "random")}
    for share in SHARES:  # 95 % is the measure; the higher shares separate the strategies more
        at = {s: [labels_to_reach(c, share * full_f1) for c in curves if c.strategy == s] for s in needed}
        print(f"\n| strategy | labels to {100 * share:.0f} % of full-data macro-F1 ({args.features}), seeds | mean |")
        print("|---|---|---|")
        for strategy, values in at.items():
            known = [v for v in values if v is not None]
            mean = f"{statistics.mean(known):.0f}" if len(known) == len(values) else "not reached by every seed"
            print(f"| {strategy} | {', '.join(str(v) for v in values)} | {mean} |")
        if all(v is not None for vs in at.values() for v in vs):
            saving = 1 - statistics.mean(at["active"]) / statistics.mean(at["random"])
            print(f"\nactive needs {100 * saving:.0f} % fewer labels than random")
    if not args.no_mlflow:
        log(curves, args, full_f1, target, needed)


def log(curves, args, full_f1, target, needed) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tracking.configure(tracking.resolve_uri(None), "security-topics-active-learning")
    with (
        tempfile.TemporaryDirectory() as tmp,
        tracking.start_run(run_name=f"active-vs-random-{args.features}", tags={"stage": "simulation"}),
    ):
        out = Path(tmp)
        with (out / "curves.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["strategy", "seed", "labels", "val_macro_f1"])
            for c in curves:
                writer.writerows([c.strategy, c.seed, n, f] for n, f in zip(c.labels, c.macro_f1))
        fig, ax = plt.subplots(figsize=(6, 4))
        for c in curves:
            ax.plot(
                c.labels,
                c.macro_f1,
                color="crimson" if c.strategy == "active" else "grey",
                alpha=0.6,
                label=c.strategy if c.seed == 0 else None,
            )
        ax.axhline(target, linestyle=":", color="black", label=f"95 % of full data ({full_f1:.3f})")
        ax.set_xlabel("labelled sentences")
        ax.set_ylabel("validation macro-F1")
        ax.set_title(f"active vs random labelling ({args.features}, {args.seeds} seeds)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(out / "learning_curves.png", dpi=90)
        tracking.log_config(vars(args), str(vars(args)))
        metrics = {"full_val_macro_f1": full_f1}
        for strategy, values in needed.items():
            if all(v is not None for v in values):
                metrics[f"{strategy}_labels_to_target"] = statistics.mean(values)
        tracking.log_metrics(metrics)
        tracking.log_artifacts(out, "simulation")


if __name__ == "__main__":
    main()
