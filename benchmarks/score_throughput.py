"""Batch-scoring throughput: articles per second of `security-topics score`, local and Spark engines.

    python benchmarks/score_throughput.py --model models/default --copies 2 --master 'local[2]'

Scores the same input (`--articles`, repeated `--copies` times under new ids) with both engines into
temporary folders and prints, per engine, the wall time end to end (model load and, for Spark, the
JVM and session start included) and the articles per second (for Spark also without the session
start); then whether the two engines gave the same topics for every article.
"""

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from security_topics.scoring import read_output, score_local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--articles", default="data/raw/articles.jsonl")
    parser.add_argument("--copies", type=int, default=2, help="repeat the articles (new ids) for a longer run")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--engines", nargs="+", default=["local", "spark"], choices=("local", "spark"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    articles = [json.loads(line) for line in Path(args.articles).read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "archive.jsonl"
        with source.open("w", encoding="utf-8") as out:
            for copy in range(args.copies):
                for a in articles:
                    out.write(
                        json.dumps({"id": f"{a['id']}-{copy}", "title": a.get("title"), "text": a["text"]}) + "\n"
                    )
        n = len(articles) * args.copies
        topics = {}
        for engine in args.engines:
            output = Path(tmp) / f"{engine}.parquet"
            started, session = time.perf_counter(), 0.0
            if engine == "local":
                summary = score_local(args.model, source, output, batch_size=args.batch_size)
            else:
                from security_topics.scoring_spark import score_spark, start_spark

                start_spark(args.master, batch_size=args.batch_size)  # the job reuses this session
                session = time.perf_counter() - started
                summary = score_spark(args.model, source, output, master=args.master, batch_size=args.batch_size)
            seconds = time.perf_counter() - started
            assert summary.scored == n, (engine, summary)
            topics[engine] = {r["id"]: r["topics"] for r in read_output(output)}
            where = f"spark {args.master}" if engine == "spark" else "local, 1 process"
            line = f"{engine:>5} ({where}): {n} articles in {seconds:.1f} s = {n / seconds:.1f} articles/s"
            if session:
                job = seconds - session
                line += f"; without the {session:.1f} s session start: {job:.1f} s = {n / job:.1f} articles/s"
            print(line)
        if len(topics) == 2:
            same = topics["local"] == topics["spark"]
            print(f"model {args.model} ({summary.model['name']}): same topics from both engines: {same}")


if __name__ == "__main__":
    main()
