"""Scoring backends side by side: the naive HF forward, the fp32 and bf16 predictor, ONNX int8.

    security-topics export models/default models/default-int8 --quantize int8
    python benchmarks/backend_speed.py --model models/default --onnx models/default-int8 [more exports] [--rounds 3]

One process, interleaved rounds (every variant at every thread count once per round, so a busy
neighbour slows all of them alike), the same corpus sentences and articles for all. Prints the median
sentences/s and articles/s, the ratio to the naive forward at the same thread count, p50/p95 of a
20-sentence article, and (each in a fresh subprocess) load time and peak RSS. The naive forward is
what a first script would do: the transformer member in fp32, batches of 32 in corpus order (no length
sorting), padded to the batch's longest. The compute limit is the encoder's GEMM FLOPs per sentence
against this machine's measured fp32/bf16 GEMM rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from security_topics import Predictor
from security_topics.models import load_model
from security_topics.models.card import ModelCard
from security_topics.models.ensemble import MEMBERS

# VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child would report its parent's peak.
LOAD_SCRIPT = """
import re, sys, time
started = time.perf_counter()
from security_topics import Predictor
predictor = Predictor.load(sys.argv[1], device="cpu", precision=sys.argv[2], num_threads=1)
predictor.predict_sentences(["تفكيك خلية إرهابية"])
peak = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
print(time.perf_counter() - started, peak, "torch" in sys.modules)
"""


def transformer_dir(model: Path) -> Path:
    card = ModelCard.load(model)
    if card.family == "transformer":
        return model
    for name in card.settings.get("members", []):
        if ModelCard.load(model / MEMBERS / name).family == "transformer":
            return model / MEMBERS / name
    raise SystemExit(f"{model}: no transformer in it")


def naive_scorer(model: Path):
    """Score like a first script: fp32, batches of 32 in the given order, padded per batch."""
    member = load_model(transformer_dir(model), device="cpu", precision="fp32")

    @torch.inference_mode()
    def score(texts: list[str]) -> np.ndarray:
        out = []
        inputs = member.model_inputs(texts)
        for start in range(0, len(inputs), 32):
            batch = member.tokenizer(
                inputs[start : start + 32],
                padding=True,
                truncation=True,
                max_length=member.max_length,
                return_tensors="pt",
            )
            out.append(torch.sigmoid(member.classifier(**batch)["logits"]).numpy())
        return np.concatenate(out)

    return score, member


def gemm_rate(threads: int, dtype: torch.dtype, tokens: int = 34 * 32, width: int = 384) -> float:
    """GFLOP/s of the encoder's largest GEMM shape (tokens × width → 4·width) at `threads`."""
    torch.set_num_threads(threads)
    a, b = torch.randn(tokens, width, dtype=dtype), torch.randn(width, 4 * width, dtype=dtype)
    for _ in range(3):
        a @ b
    started, n = time.perf_counter(), 20
    for _ in range(n):
        a @ b
    return 2 * tokens * width * 4 * width * n / (time.perf_counter() - started) / 1e9


def load_stats(path: str, precision: str) -> tuple[float, float, bool]:
    out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, path, precision], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    seconds, rss, torch_loaded = out.stdout.split()
    return float(seconds), float(rss), torch_loaded == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument(
        "--onnx", nargs="+", default=["models/default-int8"], help="exports: `security-topics export … --quantize int8`"
    )
    parser.add_argument("--sentences", default="data/processed/security_topics/test.jsonl")
    parser.add_argument("--articles", default="data/processed/security_topics/articles_test.jsonl")
    parser.add_argument("--n-sentences", type=int, default=384)
    parser.add_argument("--n-articles", type=int, default=8)
    parser.add_argument("--latency-articles", type=int, default=3, help="20-sentence articles timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--load-only", action="store_true", help="only the load time and peak RSS")
    args = parser.parse_args()
    if args.load_only:
        return print_load(args)

    sentences = [json.loads(x)["text"] for x in Path(args.sentences).read_text().splitlines() if x]
    sentences = (sentences * (1 + args.n_sentences // max(len(sentences), 1)))[: args.n_sentences]
    articles = [json.loads(x) for x in Path(args.articles).read_text().splitlines() if x][: args.n_articles]
    twenty = [" ".join(sentences[i * 20 : (i + 1) * 20]) for i in range(args.latency_articles)]
    thread_counts = [int(t) for t in args.threads.split(",")]

    naive, member = naive_scorer(Path(args.model))
    variants: dict[str, dict[int, object]] = {
        "fp32 predictor": {t: Predictor.load(args.model, device="cpu", precision="fp32") for t in thread_counts[:1]},
        "bf16 predictor": {t: Predictor.load(args.model, device="cpu", precision="bf16") for t in thread_counts[:1]},
    }
    for path in args.onnx:
        variants[f"onnx {Path(path).name}"] = {t: Predictor.load(path, num_threads=t) for t in thread_counts}
    for name in ("fp32 predictor", "bf16 predictor"):  # torch threads are per process: one model serves all
        variants[name] = dict.fromkeys(thread_counts, variants[name][thread_counts[0]])
    tokens = np.mean([len(x) for x in member.encode(sentences)[0]["input_ids"]])

    speed: dict[tuple[str, int], list[float]] = {}
    article_speed: dict[tuple[str, int], list[float]] = {}
    latency: dict[tuple[str, int], list[float]] = {}
    for round_ in range(args.rounds):
        for threads in thread_counts:
            torch.set_num_threads(threads)
            started = time.perf_counter()
            naive(sentences)
            speed.setdefault(("naive HF forward", threads), []).append(len(sentences) / (time.perf_counter() - started))
            for name, by_threads in variants.items():
                predictor = by_threads[threads]
                started = time.perf_counter()
                predictor.predict_sentences(sentences)
                speed.setdefault((name, threads), []).append(len(sentences) / (time.perf_counter() - started))
                started = time.perf_counter()
                predictor.predict_articles([a["text"] for a in articles], titles=[a.get("title") for a in articles])
                article_speed.setdefault((name, threads), []).append(len(articles) / (time.perf_counter() - started))
                for text in twenty:
                    started = time.perf_counter()
                    predictor.predict_article(text)
                    latency.setdefault((name, threads), []).append(time.perf_counter() - started)
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    names = ["naive HF forward", *variants]
    print(
        f"\n{len(sentences)} sentences ({tokens:.1f} tokens each on average), {len(articles)} articles, "
        f"{args.rounds} interleaved rounds, medians; × = against the naive forward at the same thread count\n"
    )
    header = "| variant | " + " | ".join(f"{t} thr sent/s | × | art/s | 20-sent p50 / p95 ms" for t in thread_counts)
    print(header + " |")
    print("|---" * (1 + 4 * len(thread_counts)) + "|")
    for name in names:
        cells = []
        for t in thread_counts:
            rate, base = statistics.median(speed[(name, t)]), statistics.median(speed[("naive HF forward", t)])
            if (name, t) in latency:
                times = np.array(latency[(name, t)]) * 1000
                cells += [
                    f"{rate:.1f}",
                    f"{rate / base:.2f}",
                    f"{statistics.median(article_speed[(name, t)]):.2f}",
                    f"{np.percentile(times, 50):.0f} / {np.percentile(times, 95):.0f}",
                ]
            else:
                cells += [f"{rate:.1f}", "1.00", "–", "–"]
        print(f"| {name} | " + " | ".join(cells) + " |")

    flops = 2 * sum(p.numel() for n, p in member.classifier.named_parameters() if "embeddings" not in n) * tokens
    print(f"\ncompute limit: {flops / 1e9:.2f} GFLOP/sentence (2 × encoder weights × {tokens:.1f} tokens)")
    for t in thread_counts:
        for dtype in (torch.float32, torch.bfloat16):
            rate = gemm_rate(t, dtype)
            print(
                f"  {t} thread(s) {str(dtype)[6:]}: GEMM {rate:.0f} GFLOP/s "
                f"→ at most {rate * 1e9 / flops:.0f} sentences/s"
            )

    print_load(args)


def print_load(args: argparse.Namespace) -> None:
    print("\nload (fresh process, imports included, first sentence scored) and peak RSS:")
    for name, path, precision in (
        ("fp32 predictor", args.model, "fp32"),
        ("bf16 predictor", args.model, "bf16"),
        *((f"onnx {Path(path).name}", path, "fp32") for path in args.onnx),
    ):
        seconds, rss, torch_loaded = load_stats(path, precision)
        print(f"  {name}: {seconds:.1f} s, peak RSS {rss:.0f} MB{'' if torch_loaded else ', torch never imported'}")


if __name__ == "__main__":
    main()
