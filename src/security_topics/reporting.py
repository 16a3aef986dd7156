"""Evaluation reports: metric files, plots and error analysis for sentences and articles.

Everything here writes plain files (JSON, CSV, PNG, text) that DVC, MLflow and people read.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    classification_report,
    multilabel_confusion_matrix,
    precision_recall_curve,
)

from security_topics.calibration import ECE_BINS, coverage, expected_calibration_error, reliability
from security_topics.data import Article, Example
from security_topics.decisions import decide
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics, slice_rates, support, topic_columns
from security_topics.predictor import Predictor

log = logging.getLogger(__name__)


def evaluate_predictor(
    predictor: Predictor,
    examples: Sequence[Example],
    articles: Sequence[Article],
    out_dir: Path,
    real: tuple[Sequence[Example], Sequence[Article]] | None = None,
) -> dict[str, float]:
    """Sentence-level (`test_*`) and article-level (`article_*`) metrics, with their reports: the
    metric files and plots, calibration (ECE before/after, reliability diagrams) and the coverage
    of the review band. `real` held-out sentences and articles get the same as `test_real_*` and
    `article_real_*`.

    Writes `metrics.json` ({"test": …, "article": …}) for DVC beside the per-level files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    levels: dict[str, dict[str, float]] = {}
    extra: dict[str, float] = {}
    sets = [("test", "article", examples, articles)]
    if real is not None:
        sets.append(("test_real", "article_real", *real))
    for sentence_level, article_level, level_examples, level_articles in sets:
        extra.update(
            _evaluate_level(predictor, level_examples, level_articles, out_dir, sentence_level, article_level, levels)
        )
    (out_dir / "metrics.json").write_text(json.dumps(levels, indent=2) + "\n")
    return {**{f"{level}_{k}": v for level, values in levels.items() for k, v in values.items()}, **extra}


def _evaluate_level(
    predictor: Predictor,
    examples: Sequence[Example],
    articles: Sequence[Article],
    out_dir: Path,
    sentence_level: str,
    article_level: str,
    levels: dict[str, dict[str, float]],
) -> dict[str, float]:
    labels = predictor.labels
    label_set = LabelSet.of(labels)
    name = str(predictor.model.card.settings.get("name", predictor.model.card.family))
    decisions = decide(predictor, examples, articles)
    review = predictor.model.card.review or {}
    extra: dict[str, float] = {}
    if examples:
        texts = [e.text for e in examples]
        y_true = label_set.encode_many([e.labels for e in examples])
        scores = decisions.sentence_scores
        ids = [e.id for e in examples]
        levels[sentence_level] = write_report(
            out_dir, sentence_level, labels, y_true, scores, predictor.thresholds, texts, ids, name
        )
        if any("subtheme" in e.meta for e in examples):
            groups = [str(e.meta.get("subtheme", "")) for e in examples]
            rates = slice_rates(y_true, decisions.sentence_labels, groups, labels)
            write_slices(out_dir / f"{sentence_level}_slices.csv", rates)
        extra.update(write_calibration(out_dir, sentence_level, labels, y_true, decisions.sentence_raw, scores, name))
        bands = review.get("sentence_bands", {})
        extra.update(write_coverage(out_dir, sentence_level, y_true, scores, predictor.thresholds, bands, None, name))
    if articles:
        y_true = label_set.encode_many([a.labels for a in articles])
        scores = decisions.article_scores
        shown = [f"{a.title} — {a.text[:160]}" for a in articles]
        ids = [a.id for a in articles]
        levels[article_level] = write_report(
            out_dir, article_level, labels, y_true, scores, predictor.article_thresholds, shown, ids, name
        )
        if any("kind" in a.meta for a in articles):
            groups = [str(a.meta.get("kind", "")) for a in articles]
            rates = slice_rates(y_true, decisions.article_labels, groups, labels)
            write_slices(out_dir / f"{article_level}_slices.csv", rates)
        extra.update(write_calibration(out_dir, article_level, labels, y_true, decisions.article_raw, scores, name))
        bands, target = review.get("bands", {}), predictor.review_target
        thresholds = predictor.article_thresholds
        extra.update(write_coverage(out_dir, article_level, y_true, scores, thresholds, bands, target, name))
        with (out_dir / f"{article_level}_predictions.jsonl").open("w", encoding="utf-8") as f:
            for article, result in zip(articles, decisions.articles):
                record = {"id": article.id, "gold": list(article.labels), **result.to_dict()}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return extra


def write_calibration(
    out_dir: Path,
    prefix: str,
    labels: Sequence[str],
    y_true: np.ndarray,
    raw: np.ndarray,
    calibrated: np.ndarray,
    model_name: str,
) -> dict[str, float]:
    """Expected calibration error per topic (15 equal-mass bins) of the model's own scores and of the
    calibrated ones, as `{prefix}_calibration.json` and a reliability diagram; returns the means."""
    rows = {}
    for j, name in enumerate(labels):
        rows[name] = {
            "ece_uncalibrated": expected_calibration_error(y_true[:, j], raw[:, j]),
            "ece": expected_calibration_error(y_true[:, j], calibrated[:, j]),
        }
    means = {k: float(np.mean([r[k] for r in rows.values()])) for k in ("ece_uncalibrated", "ece")}
    (out_dir / f"{prefix}_calibration.json").write_text(
        json.dumps({"per_topic": rows, "mean": means, "bins": ECE_BINS}, indent=2) + "\n"
    )
    title = f"{model_name}: {_what(prefix)} ({len(y_true)}), {ECE_BINS} equal-mass bins"
    fig, axes = _figure(len(labels))
    for j, (ax, name) in enumerate(zip(axes, labels)):
        ax.plot([0, 1], [0, 1], ":", color="grey")
        for scores, label, style in ((raw, "uncalibrated", "o--"), (calibrated, "calibrated", "s-")):
            x, y = reliability(y_true[:, j], scores[:, j])
            key = "ece" if label == "calibrated" else "ece_uncalibrated"
            ax.plot(x, y, style, markersize=4, label=f"{label} (ECE {rows[name][key]:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean score in bin")
        ax.set_ylabel("share that carries the topic")
        ax.set_title(name)
        ax.legend(loc="upper left", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_dir / f"{prefix}_reliability.png", dpi=90)
    _close(fig)
    return {f"{prefix}_ece_mean": means["ece"], f"{prefix}_ece_mean_uncalibrated": means["ece_uncalibrated"]}


def write_coverage(
    out_dir: Path,
    prefix: str,
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    bands: dict[str, dict[str, list[float]]],
    target: float | None,
    model_name: str,
) -> dict[str, float]:
    """The coverage curve of the review band: per target, the share decided automatically and F1 on
    that share (`{prefix}_coverage.csv` and a plot). Returns the figures at `target` (the band the
    predictor applies; none for sentences, whose bands are only reported)."""
    if not bands:
        return {}
    rows = []
    for key, band in sorted(bands.items(), key=lambda kv: float(kv[0])):
        figures = coverage(y_true, scores, thresholds, np.asarray(band["reject"]), np.asarray(band["accept"]))
        rows.append({"target": float(key), **figures})
    with (out_dir / f"{prefix}_coverage.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig, axes = _figure(1)
    ax = axes[0]
    ax.plot([r["coverage"] for r in rows], [r["f1_covered"] for r in rows], "o-")
    for r in rows:
        ax.annotate(
            f"{r['target']:g}", (r["coverage"], r["f1_covered"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.axhline(
        rows[0]["f1_all"], color="grey", linestyle=":", label=f"F1, everything automatic ({rows[0]['f1_all']:.3f})"
    )
    ax.set_xlabel("share decided automatically")
    ax.set_ylabel("micro-F1 on that share")
    ax.set_xlim(0, 1.02)
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title(f"{model_name}: review band on {_what(prefix)} (target by point)")
    fig.tight_layout()
    fig.savefig(out_dir / f"{prefix}_coverage.png", dpi=90)
    _close(fig)
    chosen = next((r for r in rows if target is not None and r["target"] == target), None)
    if chosen is None:
        return {}
    figures = {
        f"{prefix}_review_share": 1.0 - chosen["coverage"],
        f"{prefix}_auto_f1": chosen["f1_covered"],
        f"{prefix}_review_decision_share": 1.0 - chosen["decision_coverage"],
    }
    return {k: v for k, v in figures.items() if not np.isnan(v)}  # no F1 where nothing was decided


def _what(prefix: str) -> str:
    """What a report prefix scores: `test`, `test_real` are sentences; `article*` articles."""
    what = "sentences" if prefix.startswith("test") else "articles"
    return f"real {what}" if prefix.endswith("_real") else what


def write_slices(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """The slice table as CSV (one row per sub-theme or article kind), worst false alarms logged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    rates = [
        (float(v), row["slice"], k.removeprefix("fp_rate_"))
        for row in rows
        for k, v in row.items()
        if k.startswith("fp_rate_") and v != ""
    ]
    worst = sorted(rates, reverse=True)[:3]
    log.info("%s: highest false-positive rates %s", path.name, [f"{s}→{t} {r:.2f}" for r, s, t in worst])


def write_report(
    out_dir: Path,
    prefix: str,
    labels: Sequence[str],
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    texts: Sequence[str],
    ids: Sequence[str],
    model_name: str = "model",
) -> dict[str, float]:
    """Write metrics JSON, classification report, predictions, errors and plots; return metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    y_pred = (scores >= thresholds).astype(int)
    metrics = compute_metrics(y_true, y_pred, labels)
    on_disk = {**metrics, "support": support(y_true, labels)}
    (out_dir / f"{prefix}_metrics.json").write_text(json.dumps(on_disk, indent=2) + "\n")
    report = classification_report(
        y_true.astype(int), y_pred, labels=topic_columns(y_true), target_names=list(labels), zero_division=0, digits=3
    )
    (out_dir / f"{prefix}_classification_report.txt").write_text(report)
    _write_predictions(out_dir / f"{prefix}_predictions.csv", labels, y_true, y_pred, scores, texts, ids)
    _write_predictions(out_dir / f"{prefix}_errors.csv", labels, y_true, y_pred, scores, texts, ids, errors_only=True)
    title = f"{model_name}: {_what(prefix)} ({len(y_true)})"
    plot_confusion(out_dir / f"{prefix}_confusion.png", labels, y_true, y_pred, title)
    plot_precision_recall(out_dir / f"{prefix}_precision_recall.png", labels, y_true, scores, thresholds, title)
    _write_pr_points(out_dir / f"{prefix}_precision_recall", labels, y_true, scores)
    return metrics


def _write_predictions(
    path: Path,
    labels: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray,
    texts: Sequence[str],
    ids: Sequence[str],
    errors_only: bool = False,
) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "gold", "predicted", "missed", "false_alarms", *[f"score_{n}" for n in labels]])
        for i in range(len(texts)):
            gold = {n for n, on in zip(labels, y_true[i]) if on}
            predicted = {n for n, on in zip(labels, y_pred[i]) if on}
            if errors_only and gold == predicted:
                continue
            writer.writerow(
                [
                    ids[i],
                    texts[i],
                    "|".join(sorted(gold)),
                    "|".join(sorted(predicted)),
                    "|".join(sorted(gold - predicted)),
                    "|".join(sorted(predicted - gold)),
                    *[f"{s:.4f}" for s in scores[i]],
                ]
            )


def _write_pr_points(directory: Path, labels: Sequence[str], y_true: np.ndarray, scores: np.ndarray) -> None:
    """One precision-recall CSV per topic, which `dvc plots show` draws one plot each."""
    directory.mkdir(parents=True, exist_ok=True)
    for j, name in enumerate(labels):
        if not np.any(y_true[:, j] > 0):
            continue
        precision, recall, thresholds = precision_recall_curve(y_true[:, j], scores[:, j])
        with (directory / f"{name}.csv").open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["recall", "precision", "threshold"])
            for p, r, t in zip(precision[:-1], recall[:-1], thresholds):
                writer.writerow([f"{r:.4f}", f"{p:.4f}", f"{t:.4f}"])


def _figure(n_panels: int) -> tuple[Any, np.ndarray]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n_panels, 3)
    rows = int(np.ceil(n_panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.axis("off")
    return fig, axes.flat


def plot_confusion(path: Path, labels: Sequence[str], y_true: np.ndarray, y_pred: np.ndarray, title: str) -> None:
    """One 2×2 matrix per topic; counts in white on dark cells and black on light ones."""
    columns = topic_columns(y_true) or range(len(labels))
    matrices = multilabel_confusion_matrix(y_true.astype(int), y_pred.astype(int), labels=columns)
    fig, axes = _figure(len(labels))
    for ax, name, matrix in zip(axes, labels, matrices):
        ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
        for (r, c), value in np.ndenumerate(matrix):
            dark = value > matrix.max() / 2
            ax.text(c, r, str(value), ha="center", va="center", color="white" if dark else "black", fontsize=12)
        ax.set_xticks([0, 1], ["no", "yes"])
        ax.set_yticks([0, 1], ["no", "yes"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _close(fig)


def plot_precision_recall(
    path: Path, labels: Sequence[str], y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, title: str
) -> None:
    """Per topic: the curve, its average precision, and a marker where the chosen threshold sits."""
    fig, axes = _figure(len(labels))
    for j, (ax, name) in enumerate(zip(axes, labels)):
        if np.any(y_true[:, j] > 0):
            precision, recall, _ = precision_recall_curve(y_true[:, j], scores[:, j])
            ap = average_precision_score(y_true[:, j], scores[:, j])
            ax.plot(recall, precision, label=f"AP {ap:.3f}")
            chosen = scores[:, j] >= thresholds[j]
            tp = float(np.sum(chosen & (y_true[:, j] > 0)))
            at_p, at_r = tp / max(chosen.sum(), 1), tp / max((y_true[:, j] > 0).sum(), 1)
            ax.plot([at_r], [at_p], "o", color="crimson", label=f"threshold {thresholds[j]:.3f}")
            ax.legend(loc="lower left", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _close(fig)


def _close(fig: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)
