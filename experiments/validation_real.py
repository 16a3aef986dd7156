"""Score saved models on the real news of the current validation split, with each model's own thresholds.

    python experiments/validation_real.py models/default models/pipeline
    python experiments/validation_real.py models/r6-seed42 models/pipeline --not-trained-at 58a7282

How runs made before `val_real_macro_f1` was logged, or on another corpus, compare with today's on the
register we are judged on. Validation only: `test_real` is never used to choose.

A relabelled article can move others between training and validation (the article split is
stratified by labels), so a model trained on an earlier split may have trained on some of today's
validation sentences. `--not-trained-at COMMIT` (repeatable) leaves out every sentence that was in
the training split of the `dvc repro` recorded at COMMIT (its `dvc.lock`, read from DVC's cache).
`--leave-out-batch r9` also leaves out the rows of a later labelling batch, to score the same
sentences as a comparison made before it.

`--average` scores the models as one ensemble of equal weights (seeds of one recipe, say): their scores
averaged, with one `shared` set of thresholds fitted on the averaged scores of the whole split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import dvc.api
import numpy as np

from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics, shared_thresholds
from security_topics.models import load_model


def trained_at(commit: str) -> set[str]:
    """Ids of the training split that `dvc repro` recorded at `commit` (read from DVC's cache)."""
    text = dvc.api.read("data/processed/security_topics/train.jsonl", rev=commit, encoding="utf-8")
    return {json.loads(line)["id"] for line in text.splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--split", type=Path, default=Path("data/processed/security_topics/validation.jsonl"))
    parser.add_argument("--not-trained-at", nargs="*", default=[], metavar="COMMIT")
    parser.add_argument("--leave-out-batch", nargs="*", default=[], metavar="BATCH", help="e.g. r9: rows added since")
    parser.add_argument("--average", action="store_true", help="score the models as one equal-weight ensemble")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.split.read_text(encoding="utf-8").splitlines()]
    seen = set().union(*(trained_at(commit) for commit in args.not_trained_at))
    left_out = set(args.leave_out_batch)
    real = np.array([bool(r.get("source")) and r["id"] not in seen and r.get("batch") not in left_out for r in rows])
    texts = [r["text"] for r in rows]
    scored = []
    for path in args.models:
        model = load_model(path, num_threads=1)
        labels = LabelSet.of(model.card.labels)
        scored.append((path, labels, model.score(texts).probs, np.asarray(model.card.thresholds)))
    if args.average:
        labels = scored[0][1]
        mean = np.mean([scores for _, _, scores, _ in scored], axis=0)
        thresholds = shared_thresholds(labels.encode_many([r["labels"] for r in rows]), mean)
        scored = [(" + ".join(args.models), labels, mean, thresholds)]
    for name, labels, scores, thresholds in scored:
        y = labels.encode_many([r["labels"] for r, keep in zip(rows, real) if keep])
        metrics = compute_metrics(y, scores[real] >= thresholds, labels.names)
        topics = " ".join(
            f"{t} {metrics[f'{t}_f1']:.3f} (P {metrics[f'{t}_precision']:.2f} R {metrics[f'{t}_recall']:.2f})"
            for t in labels.names
        )
        overall = f"macro-F1 {metrics['macro_f1']:.4f}, micro {metrics['micro_f1']:.4f}"
        print(f"{name}: {int(real.sum())} real sentences, {overall}; {topics}")


if __name__ == "__main__":
    main()
