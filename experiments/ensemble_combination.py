"""How the ensemble's members are combined, and what it does to the seed article's sports_security.

    python experiments/ensemble_combination.py models/pipeline models/base-s42       # weights, both ways
    python experiments/ensemble_combination.py models/pipeline --refit 0.5 0.55      # decisions refitted

Without `--refit`: for each saved e5 + TF-IDF ensemble, validation macro-F1 (per-topic tuned thresholds)
over the weight grid, with the members' probabilities averaged and with their logits averaged; the
best weight's shared thresholds then give val real and `test_real` (reported only). With `--refit W…`:
the ensemble's decisions (sentence thresholds, calibration, article rule) refitted on validation at
e5 weight W, then the seed article's best sports sentence against its article threshold.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
from scipy.special import expit, logit

from security_topics.data import read_articles, read_sentences
from security_topics.decisions import fit_decisions, settings_from_card
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics, shared_thresholds, tune_thresholds
from security_topics.models import load_model
from security_topics.models.ensemble import EnsembleModel
from security_topics.predictor import Predictor

PROCESSED = Path("data/processed/security_topics")
SEED = Path("data/examples/seed-article.txt")


def combine(how: str, w: float, e5: np.ndarray, tfidf: np.ndarray) -> np.ndarray:
    """The members' scores averaged with e5 weight `w`: as probabilities, or as logits (then mapped back)."""
    if how == "probabilities":
        return w * e5 + (1 - w) * tfidf
    e5, tfidf = (logit(np.clip(p, 1e-6, 1 - 1e-6)) for p in (e5, tfidf))
    return expit(w * e5 + (1 - w) * tfidf)


def weights(path: str) -> None:
    members = [load_model(f"{path}/members/{k}", num_threads=2) for k in ("e5_small", "tfidf")]
    labels = LabelSet.of(members[0].card.labels)
    val, real_test = (read_sentences(PROCESSED / f"{split}.jsonl", labels) for split in ("validation", "test_real"))
    yv, yt = (labels.encode_many([e.labels for e in rows]) for rows in (val, real_test))
    real = np.array([e.is_real for e in val])
    (e5v, tfv), (e5t, tft) = ([m.score([e.text for e in rows]).probs for m in members] for rows in (val, real_test))
    for how in ("probabilities", "logits"):
        results = []
        for w in np.round(np.arange(0, 1.01, 0.1), 1):
            sv = combine(how, w, e5v, tfv)
            f1 = compute_metrics(yv, sv >= tune_thresholds(yv, sv), labels.names)["macro_f1"]
            results.append((f1, w, sv))
        f1, w, sv = max(results, key=lambda r: (round(r[0], 6), -abs(2 * r[1] - 1)))  # ties: the most even
        thresholds = shared_thresholds(yv, sv)
        val_real = compute_metrics(yv[real], sv[real] >= thresholds, labels.names)["macro_f1"]
        test_real = compute_metrics(yt, combine(how, w, e5t, tft) >= thresholds, labels.names)["macro_f1"]
        grid = " ".join(f"{r[1]:.1f}:{r[0]:.3f}" for r in results)
        best = f"e5 weight {w:.1f}, val {f1:.3f} ({grid})"
        print(f"{path} {how}: {best}; val real {val_real:.3f}, test_real {test_real:.3f}")


def refit(path: str, e5_weights: list[float]) -> None:
    base = load_model(path, num_threads=2)
    labels = LabelSet.of(base.card.labels)
    sentences = read_sentences(PROCESSED / "validation.jsonl", labels)
    articles = read_articles(PROCESSED / "articles_validation.jsonl", labels)
    j = labels.names.index("sports_security")
    for w in e5_weights:
        card = copy.deepcopy(base.card)
        card.settings["weights"] = [w, 1 - w]
        model = EnsembleModel(card, base.members)
        metrics = fit_decisions(model, sentences, articles, settings_from_card(card))["metrics"]
        predictor = Predictor(model)
        result = predictor.predict_article(SEED.read_text(encoding="utf-8"))
        best = predictor.raw_scores([s.text for s in result.sentences])[:, j].max()
        print(
            f"{path} e5 weight {w}: val {metrics['val_macro_f1']:.3f}, val real {metrics['val_real_macro_f1']:.3f}; "
            f"seed article {len(result.labels)} topics, best sports sentence {best:.3f} against "
            f"{predictor.article_rule.thresholds[j]:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--refit", nargs="*", type=float, default=None, metavar="W")
    args = parser.parse_args()
    for path in args.models:
        if args.refit is None:
            weights(path)
        else:
            refit(path, args.refit)


if __name__ == "__main__":
    main()
