"""Score saved models on the real news of the current validation split, with each model's own thresholds.

    python experiments/validation_real.py models/default models/pipeline

How runs made before `val_real_macro_f1` was logged, or on another corpus, compare with today's on the
register we are judged on. Validation only: `test_real` is never used to choose.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics
from security_topics.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--split", type=Path, default=Path("data/processed/security_topics/validation.jsonl"))
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.split.read_text(encoding="utf-8").splitlines()]
    real = [r for r in rows if r.get("source")]
    for path in args.models:
        model = load_model(path, num_threads=1)
        labels = LabelSet.of(model.card.labels)
        y = labels.encode_many([r["labels"] for r in real])
        scores = model.score([r["text"] for r in real]).probs
        metrics = compute_metrics(y, scores >= np.asarray(model.card.thresholds), labels.names)
        topics = " ".join(f"{t} {metrics[f'{t}_f1']:.3f}" for t in labels.names)
        overall = f"macro-F1 {metrics['macro_f1']:.4f}, micro {metrics['micro_f1']:.4f}"
        print(f"{path}: {len(real)} real sentences, {overall}; {topics}")


if __name__ == "__main__":
    main()
