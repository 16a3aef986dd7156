"""Start-up cost of `security-topics predict` on one article: a fresh process each time.

    python benchmarks/predict_startup.py --model models/default/members/tfidf [--repeat 5]

Prints the median and the best wall time of the whole command (interpreter start, imports, model
load, one article) and which heavy libraries the process imported. A TF-IDF model should never
pull torch, transformers or mlflow.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "mlflow", "onnxruntime", "pyspark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default/members/tfidf")
    parser.add_argument("--article", default="data/sample_article.txt")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    cli = Path(sys.executable).with_name("security-topics")
    command = [str(cli), "predict", "--model", args.model, args.article]
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)

    probe = (
        "import sys; from security_topics.cli import main; "
        f"main(['predict', '--model', {args.model!r}, {args.article!r}, '--output', '/dev/null']); "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules) or 'none')"
    )
    heavy = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    print(f"security-topics predict, {args.model}, {args.repeat} runs")
    print(f"  median {statistics.median(times):.2f} s, best {min(times):.2f} s")
    print(f"  heavy libraries imported: {' '.join(heavy)}")


if __name__ == "__main__":
    main()
