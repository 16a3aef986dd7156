"""The accuracy budget of the fast backends: test macro-F1 and how many label sets change against fp32.

    security-topics export models/default models/default-int8 --quantize int8
    python benchmarks/backend_accuracy.py --model models/default --onnx models/default-int8

Test sentences and test articles of the prepared splits. fp32 and bf16 use the model's thresholds
and article rule; each ONNX export uses its own (re-tuned on its validation scores by the export).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from security_topics import Predictor
from security_topics.data import read_articles, read_sentences
from security_topics.decisions import compare, decide
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics


def evaluate(predictor: Predictor, sentences: list, articles: list, labels: LabelSet) -> dict:
    decided = decide(predictor, sentences, articles)
    return {
        "decisions": decided,
        "probs": decided.sentence_raw,
        "sentence_f1": compute_metrics(
            labels.encode_many([e.labels for e in sentences]), decided.sentence_labels, labels.names
        )["macro_f1"],
        "article_f1": compute_metrics(
            labels.encode_many([a.labels for a in articles]), decided.article_labels, labels.names
        )["macro_f1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--onnx", nargs="*", default=["models/default-int8"], help="exported model directories")
    parser.add_argument("--splits", default="data/processed/security_topics")
    args = parser.parse_args()

    fp32 = Predictor.load(args.model, device="cpu", precision="fp32")
    labels = LabelSet.of(fp32.labels)
    sentences = read_sentences(Path(args.splits) / "test.jsonl", labels)
    articles = read_articles(Path(args.splits) / "articles_test.jsonl", labels)
    variants = {"fp32": fp32, "bf16": Predictor.load(args.model, device="cpu", precision="bf16")}
    for path in args.onnx:
        variants[f"onnx {Path(path).name}"] = Predictor.load(path)
    print(f"{len(sentences)} test sentences, {len(articles)} test articles\n")
    print(
        "| backend | sentence macro-F1 | Δ | article macro-F1 | Δ | sentence label sets changed | "
        "article label sets changed | max abs Δp |"
    )
    print("|---|---|---|---|---|---|---|---|")
    base = evaluate(fp32, sentences, articles, labels)
    for name, predictor in variants.items():
        out = base if name == "fp32" else evaluate(predictor, sentences, articles, labels)
        figures = compare(base["decisions"], out["decisions"], sentences, articles)
        changed_s = round(figures["sentence_label_sets"] * len(sentences))
        changed_a = round(figures.get("article_label_sets", 0.0) * len(articles))
        print(
            f"| {name} | {out['sentence_f1']:.4f} | {100 * (out['sentence_f1'] - base['sentence_f1']):+.2f} pt | "
            f"{out['article_f1']:.4f} | {100 * (out['article_f1'] - base['article_f1']):+.2f} pt | "
            f"{changed_s} of {len(sentences)} ({100 * changed_s / len(sentences):.1f} %) | "
            f"{changed_a} of {len(articles)} ({100 * changed_a / len(articles):.1f} %) | "
            f"{np.abs(out['probs'] - base['probs']).max():.4f} |"
        )


if __name__ == "__main__":
    main()
