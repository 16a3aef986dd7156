"""Start-up cost of `security-topics predict` on one article: a fresh process each time.

    python benchmarks/predict_startup.py --model models/default [--precision auto] [--repeat 5]

Prints the median and the best wall time of the whole command (interpreter start, imports, model
load, one article), then where the time goes, from fresh processes that time each phase themselves
(medians): the CLI's own imports (the predictor's included), the libraries the model's families import,
`Predictor.load` without them, and the first article. It also lists the heavy libraries the command
imported: a TF-IDF model should never pull torch, transformers or mlflow.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "sklearn", "mlflow", "onnxruntime", "pyspark")

# Runs in a fresh interpreter as the CLI does (no garbage collection until the model has loaded, no
# interpreter teardown at the end); prints its phases as JSON. The family modules are imported before
# `Predictor.load` so that "load" is reading the model and "imports" is what its families pull in.
PHASES = """
import gc, json, os, sys, time
started = time.perf_counter()
gc.disable()
import security_topics.cli
from security_topics.models import FAMILIES
from security_topics.models.card import CARD_FILE
from security_topics.predictor import Predictor
cli = time.perf_counter()
import importlib
from pathlib import Path
families = {json.loads(p.read_text())["family"] for p in Path(MODEL).rglob(CARD_FILE)}
for family in sorted(families) if PRECISION is None else []:  # auto: what it loads is the cache's choice
    importlib.import_module(FAMILIES[family].split(":")[0])
imports = time.perf_counter()
predictor = Predictor.load(MODEL, precision=PRECISION, num_threads=1)
load = time.perf_counter()
gc.freeze()
gc.enable()
predictor.predict_article(Path(ARTICLE).read_text(encoding="utf-8"))
first = time.perf_counter()
print(json.dumps({"cli imports": cli - started, "family imports": imports - cli, "load": load - imports,
                  "first article": first - load, "in process": first - started}), flush=True)
os._exit(0)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--article", default="data/sample_article.txt")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--precision",
        default="card",
        help="as `predict --precision`; auto reads its cached choice (measured once first)",
    )
    args = parser.parse_args()

    cli = Path(sys.executable).with_name("security-topics")
    command = [str(cli), "-q", "predict", "--model", args.model, args.article, "--precision", args.precision]
    command += ["--num-threads", "1"]
    precision = None if args.precision == "card" else args.precision
    probe = f"MODEL, ARTICLE, PRECISION = {args.model!r}, {args.article!r}, {precision!r}\n" + PHASES
    if args.precision == "auto":  # the first call measures the backends; the runs below read the cache
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    times, phases = [], []
    for _ in range(args.repeat):  # the command and the phase probe interleaved: both see the same host
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
        wall = time.perf_counter() - started
        phase = json.loads(done.stdout.strip().splitlines()[-1])
        phase["interpreter start, exit"] = wall - phase.pop("in process")
        phases.append(phase)

    check = (
        "import sys; from security_topics.cli import main; "
        f"main(['-q', 'predict', '--model', {args.model!r}, {args.article!r}, '--output', '/dev/null', "
        f"'--precision', {args.precision!r}, '--num-threads', '1']); "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules) or 'none')"
    )
    heavy = subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, text=True).stdout.split()
    print(f"security-topics predict, {args.model}, --precision {args.precision}, one thread, {args.repeat} runs")
    print(f"  median {statistics.median(times):.2f} s, best {min(times):.2f} s")
    print("  where the time goes (medians of the phase probe):")
    for name in phases[0]:
        print(f"    {name:<22} {statistics.median(p[name] for p in phases):.2f} s")
    print(f"  heavy libraries imported: {' '.join(heavy)}")


if __name__ == "__main__":
    main()
