"""Predictor throughput: sentences and articles per second for a saved model.

    python benchmarks/predict_speed.py --model models/default [--repeat 3]

Reads the prepared test split and the articles (run `python -m security_topics.prepare` first).
Prints the best of `--repeat` timed passes, after one warm-up pass.
"""

import argparse
import json
import time
from pathlib import Path

from security_topics import Predictor


def best_of(repeat: int, work) -> float:
    work()  # warm-up: lazy initialisation, caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--sentences", default="data/processed/security_topics/test.jsonl")
    parser.add_argument("--articles", default="data/raw/articles.jsonl")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    predictor = Predictor.load(args.model, device="cpu", batch_size=args.batch_size)
    sentences = [json.loads(line)["text"] for line in Path(args.sentences).read_text().splitlines() if line]
    articles = [json.loads(line) for line in Path(args.articles).read_text().splitlines() if line]
    texts, titles = [a["text"] for a in articles], [a["title"] for a in articles]

    seconds = best_of(args.repeat, lambda: predictor.predict_sentences(sentences))
    print(f"{args.model}: {len(sentences)} sentences in {seconds:.2f} s = {len(sentences) / seconds:.0f} sentences/s")
    seconds = best_of(args.repeat, lambda: predictor.predict_articles(texts, titles))
    print(f"{args.model}: {len(articles)} articles in {seconds:.2f} s = {len(articles) / seconds:.1f} articles/s")


if __name__ == "__main__":
    main()
