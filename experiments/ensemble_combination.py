"""Average the ensemble's members as probabilities or as logits? Judged out of fold on validation.

    python experiments/ensemble_combination.py models/pipeline models/seed44

For each saved e5 + TF-IDF ensemble and each combination (`models.ensemble.COMBINATIONS`), with the
members as trained:
- sentences: the weights (`EnsembleRecipe.choose_weights`) and shared thresholds fitted inside the
  folds of validation grouped by time (`decisions.time_groups`), macro-F1 of the held-out decisions
  on every validation sentence and on the real ones;
- articles: every decision refitted on validation at those weights (`fit_decisions`), then the
  article rule (`shared`) refitted inside the folds of the validation articles, micro- and macro-F1
  of the held-out decisions on every article and on the real ones;
- reported only, never chosen on: the written test and `test_real` at the full fit, and the seed
  article's best sports_security sentence against its article threshold.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from each_model import run

from security_topics.aggregation import fit_rule
from security_topics.data import read_articles, read_sentences
from security_topics.decisions import decide, fit_decisions, settings_from_card, time_groups
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics, cv_splits, shared_thresholds
from security_topics.models import load_model
from security_topics.models.card import Scores
from security_topics.models.ensemble import COMBINATIONS, EnsembleModel, combine
from security_topics.predictor import Predictor
from security_topics.recipes.ensemble import EnsembleRecipe

PROCESSED = Path("data/processed/security_topics")
SEED = Path("data/examples/seed-article.txt")


class Remembered:
    """A member that scores each text once: every combination below rescores the same texts."""

    def __init__(self, member) -> None:
        self.member, self.card, self.seen = member, member.card, {}

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores:
        new = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if new:
            scores = self.member.score(new, batch_size=batch_size)
            self.seen.update((t, (p, c)) for t, p, c in zip(new, scores.probs, scores.truncated))
        rows = [self.seen[t] for t in texts]
        probs = np.array([p for p, _ in rows]).reshape(len(texts), len(self.card.labels))
        return Scores(probs, np.array([c for _, c in rows], dtype=bool))


def held_out(y: np.ndarray, groups: list[str], fit_decide) -> np.ndarray:
    """Decisions for every row from a fit on the other folds (`fit_decide(train, test)`)."""
    decided = np.zeros_like(y)
    for train, test in cv_splits(len(y), groups, 5):
        decided[test] = fit_decide(train, test)
    return decided


def f1(y: np.ndarray, decided: np.ndarray, names: Sequence[str], kind: str = "macro_f1") -> float:
    return compute_metrics(y, decided, names)[kind]


def compare(path: str) -> None:
    base = load_model(path, num_threads=2)
    labels = LabelSet.of(base.card.labels)
    members = [Remembered(m) for m in base.members]
    val = read_sentences(PROCESSED / "validation.jsonl", labels)
    val_articles = read_articles(PROCESSED / "articles_validation.jsonl", labels)
    y = labels.encode_many([e.labels for e in val])
    ya = labels.encode_many([a.labels for a in val_articles])
    real = np.array([e.is_real for e in val])
    real_articles = np.array([bool(a.meta.get("source")) for a in val_articles])
    probs = [m.score([e.text for e in val]).probs for m in members]
    names = labels.names
    for how in COMBINATIONS:
        recipe = EnsembleRecipe("experiment", dict.fromkeys(base.card.settings["members"]), combination=how)

        def sentences(train: np.ndarray, test: np.ndarray) -> np.ndarray:
            w = recipe.choose_weights([p[train] for p in probs], y[train], labels)  # noqa: B023
            thresholds = shared_thresholds(y[train], combine([p[train] for p in probs], w, how))  # noqa: B023
            return combine([p[test] for p in probs], w, how) >= thresholds  # noqa: B023

        decided = held_out(y, time_groups(val), sentences)
        card = copy.deepcopy(base.card)
        card.settings.update(weights=recipe.choose_weights(probs, y, labels), combination=how)
        model = EnsembleModel(card, members)
        fit_decisions(model, val, val_articles, settings_from_card(card))
        predictor = Predictor(model)
        results = predictor.predict_articles([a.text for a in val_articles], titles=[a.title for a in val_articles])
        x = np.stack([predictor.article_features(r.sentences) for r in results])

        def articles(train: np.ndarray, test: np.ndarray) -> np.ndarray:
            rule = fit_rule("shared", x[train], ya[train])  # noqa: B023
            return np.stack([rule.scores(f) for f in x[test]]) >= rule.thresholds  # noqa: B023

        decided_articles = held_out(ya, time_groups(val_articles), articles)
        on_real = ya[real_articles], decided_articles[real_articles]
        print(
            f"{path} {how} (weights {card.settings['weights']}): validation out of fold, sentences macro "
            f"{f1(y, decided, names):.3f}, real {f1(y[real], decided[real], names):.3f}; articles micro "
            f"{f1(ya, decided_articles, names, 'micro_f1'):.3f} / macro {f1(ya, decided_articles, names):.3f}, "
            f"real ({real_articles.sum()}) micro {f1(*on_real, names, 'micro_f1'):.3f}"
            f" / macro {f1(*on_real, names):.3f}"
        )
        topics = compute_metrics(y[real], decided[real], names)
        pr = ", ".join(f"{n} {topics[f'{n}_precision']:.2f} / {topics[f'{n}_recall']:.2f}" for n in names)
        print(f"    real sentences out of fold, precision / recall: {pr}")
        report(predictor, labels)


def report(predictor: Predictor, labels: LabelSet) -> None:
    """The written test and `test_real` at the full fit, and the seed article (reported only)."""
    line = []
    for split in ("test", "test_real"):
        sentences = read_sentences(PROCESSED / f"{split}.jsonl", labels)
        articles = read_articles(PROCESSED / f"articles_{split}.jsonl", labels)
        decided = decide(predictor, sentences, articles)
        y = labels.encode_many([e.labels for e in sentences])
        ya = labels.encode_many([a.labels for a in articles])
        line.append(
            f"{split} sentences {f1(y, decided.sentence_labels, labels.names):.3f}, articles micro "
            f"{f1(ya, decided.article_labels, labels.names, 'micro_f1'):.3f} / "
            f"macro {f1(ya, decided.article_labels, labels.names):.3f}"
        )
    j = labels.names.index("sports_security")
    result = predictor.predict_article(SEED.read_text(encoding="utf-8"))
    best = predictor.raw_scores([s.text for s in result.sentences])[:, j].max()
    threshold = predictor.article_rule.thresholds[j]
    line.append(f"seed article {len(result.labels)} topics, best sports sentence {best:.3f} against {threshold:.3f}")
    print("    reported only: " + "; ".join(line))


if __name__ == "__main__":
    run(__doc__, compare)
