"""How faithful the occlusion highlights are, and what they cost.

    python benchmarks/highlights.py [--model models/default] [--draws 5] [--timing-articles 10]

Words: for every test sentence positive for a topic (gold), delete its top-3 highlighted words and,
separately, 3 of the words occlusion considers (not function words) drawn at random (`--draws`
draws, averaged); report the mean fall in the topic's
score (the model's own scores) for each, per topic, and their ratio. Goal: top-3 ≥ 2× random.
Sentences: for every test article that the model labels with a topic, delete that topic's evidence
sentences, and as many random sentences of the article; the fall in the article's score for the
topic, per topic. Cost: a 20-sentence article (real test articles, cut or joined to 20 sentences)
on one thread, with and without highlights, and the highlight pass alone (on the plain result); p50
and p95 over `--timing-articles` articles × 3 runs, the three measured in turn on each article.
Validation data would do as well; the test split is what the issue asks for, and nothing is tuned on
these figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from security_topics import Predictor
from security_topics.data import read_articles, read_sentences
from security_topics.highlights import (
    HIGHLIGHT_WORDS,
    occlusion_variants,
    occlusion_weights,
    without_words,
    word_spans,
)
from security_topics.labels import LabelSet
from security_topics.text import split_sentences

PROCESSED = Path("data/processed/security_topics")


def word_faithfulness(predictor: Predictor, sentences, labels: LabelSet, draws: int, rng) -> dict:
    """Mean score fall per topic: top-3 occlusion words deleted against 3 random words deleted."""
    model = predictor.model
    out = {}
    for j, name in enumerate(labels.names):
        positives = [e.text for e in sentences if name in e.labels and len(word_spans(e.text)) > 3]
        base = model.score(positives).probs
        prepared = [occlusion_variants(text) for text in positives]
        scored = model.score([v for _, variants in prepared for v in variants]).probs  # one batched pass
        top_texts, random_texts, at = [], [], 0
        for text, b, (spans, _) in zip(tqdm(positives, desc=f"words {name}", leave=False), base, prepared):
            weights = occlusion_weights(b, scored[at : at + len(spans)])[:, j]
            at += len(spans)
            top = [spans[i] for i in np.argsort(-weights, kind="stable")[:3]]
            top_texts.append(without_words(text, top))
            for _ in range(draws):
                random_texts.append(without_words(text, [spans[i] for i in rng.choice(len(spans), 3, replace=False)]))
        top_fall = base[:, j] - model.score(top_texts).probs[:, j]
        random_fall = base[:, j].repeat(draws) - model.score(random_texts).probs[:, j]
        out[name] = {
            "sentences": len(positives),
            "top3_fall": round(float(top_fall.mean()), 4),
            "random3_fall": round(float(random_fall.mean()), 4),
            "ratio": round(float(top_fall.mean() / max(random_fall.mean(), 1e-6)), 2),
        }
    return out


def sentence_faithfulness(predictor: Predictor, articles, labels: LabelSet, draws: int, rng) -> dict:
    """Mean article-score fall per topic: the evidence sentences deleted against as many random ones."""
    falls: dict[str, dict[str, list[float]]] = {n: {"evidence": [], "random": []} for n in labels.names}
    for article in tqdm(articles, desc="articles", leave=False):
        sentences = [s.text for s in split_sentences(article.text)]
        if len(sentences) < 3:
            continue
        full = predictor.predict_article(" ".join(sentences), title=article.title, max_evidence=3)
        for topic in full.topics:
            evidence = {e.text for e in topic.evidence if e.source == "text"}
            if not evidence or len(evidence) >= len(sentences):
                continue
            kept = [s for s in sentences if s not in evidence]
            base = full.raw_scores[topic.topic]
            without_evidence = predictor.predict_article(" ".join(kept), title=article.title)
            falls[topic.topic]["evidence"].append(base - without_evidence.raw_scores.get(topic.topic, 0.0))
            for _ in range(draws):
                drop = set(rng.choice(len(sentences), len(evidence), replace=False))
                rest = [s for i, s in enumerate(sentences) if i not in drop]
                result = predictor.predict_article(" ".join(rest), title=article.title)
                falls[topic.topic]["random"].append(base - result.raw_scores.get(topic.topic, 0.0))
    out = {}
    for name, f in falls.items():
        if f["evidence"]:
            e, r = float(np.mean(f["evidence"])), float(np.mean(f["random"]))
            out[name] = {
                "articles": len(f["evidence"]),
                "evidence_fall": round(e, 4),
                "random_fall": round(r, 4),
                "ratio": round(e / max(r, 1e-6), 2),
            }
    return out


def timing(predictor: Predictor, articles, n: int) -> dict:
    """p50/p95 seconds for a 20-sentence article on one thread, with and without highlights."""
    pool = [s.text for a in articles for s in split_sentences(a.text)]
    texts = [" ".join(pool[i * 20 : (i + 1) * 20]) for i in range(n)]
    predictor.predict_article(texts[0], highlights=True)  # warm-up
    times: dict[str, list[float]] = {"plain": [], "highlights": [], "highlight_pass_alone": []}
    for _ in range(3):
        for text in texts:
            t0 = time.perf_counter()
            plain = predictor.predict_article(text)
            t1 = time.perf_counter()
            predictor._add_highlights([plain], HIGHLIGHT_WORDS)  # the occlusion pass alone, on that result
            t2 = time.perf_counter()
            predictor.predict_article(text, highlights=True)
            t3 = time.perf_counter()
            times["plain"].append(t1 - t0)
            times["highlight_pass_alone"].append(t2 - t1)
            times["highlights"].append(t3 - t2)
    out = {}
    for name, values in times.items():
        q = statistics.quantiles(values, n=20)
        out[name] = {"p50_s": round(statistics.median(values), 3), "p95_s": round(q[18], 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--timing-articles", type=int, default=10)
    parser.add_argument("--timing-only", action="store_true", help="skip the faithfulness figures")
    parser.add_argument("--out", default="experiments/benchmarks/highlights.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    torch.set_num_threads(1)
    predictor = Predictor.load(args.model, num_threads=1)
    labels = LabelSet.of(predictor.labels)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    flags = next((line.split(":", 1)[1].split() for line in cpu.splitlines() if line.startswith("Flags")), [])
    report = {
        "model": args.model,
        "cpu": next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), ""),
        "cpu_flags": sorted(f for f in flags if f.startswith(("avx512_bf16", "amx"))),
        "python": platform.python_version(),
        "precision": getattr(predictor.model, "precision", "n/a"),
        "timing_20_sentences_1_thread": timing(
            predictor, read_articles(PROCESSED / "articles_test_real.jsonl", labels), args.timing_articles
        ),
    }
    if not args.timing_only:
        sentences = read_sentences(PROCESSED / "test.jsonl", labels)
        report["words"] = word_faithfulness(predictor, sentences, labels, args.draws, rng)
        articles = read_articles(PROCESSED / "articles_test.jsonl", labels)
        report["sentences"] = sentence_faithfulness(predictor, articles, labels, args.draws, rng)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
