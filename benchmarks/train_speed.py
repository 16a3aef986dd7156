"""Training speed of the default encoder (e5-small, word embeddings frozen) in each mode, side by side.

    python benchmarks/train_speed.py [--steps 20] [--rounds 3] [--threads 2] [--batch-size 16]
        [--device cuda] [--random-init] [--profile] [--modes fp32 bf16 ...]

One process; every round runs `--steps` optimizer steps of each mode in turn (interleaved, so a busy
neighbour slows all alike) on the same batches of the prepared training split (`--batch-size`, 16 by
default; sentences of similar length together, as the Trainer's group_by_length does). Reports the median steps/s and
tokens/s (real, unpadded tokens), the ratio to fp32, the share of padding, the peak RSS of each mode
(in a fresh subprocess of a few steps), and the FLOP-based limit of this CPU: the encoder's training
FLOPs per step (6 × its GEMM weights × tokens, plus attention) against this machine's measured fp32
and bf16 GEMM rates.

Modes: fp32 (the Trainer until now); bf16 (autocast, fp32 master weights); bf16 with the lower N
encoder layers frozen; bf16 with token-budget batches (a cap on padded tokens instead of a fixed 16
texts); bf16 under torch.compile; fp32 with eager attention instead of SDPA; bf16 without dropout in
attention, and without any dropout (speed only: what dropout's random masks cost).

`--random-init` builds the same architecture from the imported checkpoint's config.json and tokenizer
with random weights (speed does not depend on the values): it runs where the 450 MB of weights cannot
travel, e.g. a borrowed machine with an AMX CPU or a GPU. `--device cuda` times the same steps on a GPU
(peak memory is then the GPU's, not RSS, and no GEMM limit is printed). `--profile` prints, before the
timed rounds, the operators a few steps of each mode spend their time in (torch.profiler).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from security_topics.data import read_sentences
from security_topics.labels import LabelSet
from security_topics.models.encoders import E5SmallEncoder
from security_topics.models.runtime import length_batches
from security_topics.models.transformer import TopicClassifier
from security_topics.text import NormalizerConfig, normalize

LABELS = LabelSet.of(("counterterrorism", "narcotics", "cybersecurity", "aviation", "sports_security"))
MODES = (
    "fp32",
    "bf16",
    "bf16+freeze4",
    "bf16+token_budget",
    "bf16+compile",
    "fp32+eager",
    "bf16+no_attn_dropout",
    "bf16+no_dropout",
)


def build(
    mode: str, cache_dir: str, random_init: bool = False, device: str = "cpu"
) -> tuple[TopicClassifier, torch.optim.Optimizer, object]:
    if random_init:
        source = Path(cache_dir) / "multilingual-e5-small"
        encoder, tokenizer = BertModel(BertConfig.from_pretrained(source)), AutoTokenizer.from_pretrained(source)
    else:
        encoder, tokenizer = E5SmallEncoder(cache_dir=cache_dir).build([], seed=0)
    if "eager" in mode:
        encoder.config._attn_implementation = "eager"
    classifier = TopicClassifier(encoder, len(LABELS), pooling="mean").to(device)
    encoder.get_input_embeddings().weight.requires_grad_(False)
    if "no_attn_dropout" in mode or "no_dropout" in mode:  # the cost of dropout's random masks
        for name, module in encoder.named_modules():
            in_attention = name.endswith("attention.self.dropout")
            if isinstance(module, torch.nn.Dropout) and ("no_dropout" in mode or in_attention):
                module.p = 0.0
    if "freeze4" in mode:
        for layer in encoder.encoder.layer[:4]:
            layer.requires_grad_(False)
    classifier.train()
    optimizer = classifier.configure_optimizers(1e-4, 2e-3, 0.01)
    if "compile" in mode:
        classifier = torch.compile(classifier)
    return classifier, optimizer, tokenizer


def batches(tokenizer, texts, labels, token_budget: bool, seed: int = 0, size: int = 16):
    """Batches of `size` texts of similar length (megabatches of 50 batches sorted by length, shuffled),
    or batches capped at `size` × the median batch's padded length in tokens (token_budget)."""
    encoded = tokenizer(["passage: " + t for t in texts], truncation=True, max_length=128)["input_ids"]
    lengths = np.array([len(ids) for ids in encoded])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    if token_budget:
        cap = int(size * np.median(lengths) * 1.25)
        groups = [order[i] for i in length_batches(lengths[order].tolist(), batch_size=64, max_tokens=cap)]
        rng.shuffle(groups)
    else:
        groups = []
        for start in range(0, len(order), 50 * size):
            mega = sorted(order[start : start + 50 * size], key=lambda i: -lengths[i])
            groups += [np.array(mega[k : k + size]) for k in range(0, len(mega), size)]
    for index in groups:
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in index]}, return_tensors="pt")
        yield batch, torch.from_numpy(labels[index]), int(lengths[index].sum())


def run(mode: str, classifier, optimizer, stream, steps: int, device: str = "cpu") -> tuple[float, float, float]:
    """`steps` optimizer steps; (seconds, real tokens, padded tokens)."""
    kind = torch.device(device).type
    autocast = torch.autocast(kind, dtype=torch.bfloat16) if "bf16" in mode else nullcontext()
    seconds = tokens = padded = 0.0
    for _ in range(steps):
        batch, y, real = next(stream)
        batch, y = {k: v.to(device) for k, v in batch.items()}, y.to(device)
        started = time.perf_counter()
        with autocast:
            logits = classifier(**batch)["logits"]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if kind == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - started
        tokens += real
        padded += batch["input_ids"].numel()
    return seconds, tokens, padded


def profile(
    mode: str,
    built: tuple[TopicClassifier, torch.optim.Optimizer, object],
    stream: Iterator,
    device: str,
    steps: int = 5,
) -> None:
    """The operators a few steps of `mode` spend their time in (torch.profiler, self time)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with torch_profile(activities=activities) as prof:
        run(mode, built[0], built[1], stream, steps, device)
    key = "self_device_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    print(f"\n{mode}: {steps} steps profiled\n" + prof.key_averages().table(sort_by=key, row_limit=15))


def gemm_rate(dtype: torch.dtype, threads: int) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(16 * 40, 384, dtype=dtype), torch.randn(384, 1536, dtype=dtype)
    for _ in range(20):
        a @ b
    started, n = time.perf_counter(), 200
    for _ in range(n):
        a @ b
    return 2 * a.shape[0] * 384 * 1536 * n / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", nargs="*", default=list(MODES))
    parser.add_argument("--splits", default="data/processed/security_topics")
    parser.add_argument("--cache-dir", default="models/cache")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--random-init", action="store_true", help="the same architecture, random weights")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="where a step of each mode spends its time")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one mode, a few steps: peak RSS
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train = read_sentences(Path(args.splits) / "train.jsonl", LABELS)
    texts = [normalize(e.text, NormalizerConfig(digits=False)) for e in train]
    y = LABELS.encode_many([e.labels for e in train])
    if args.child:
        classifier, optimizer, tokenizer = build(args.child, args.cache_dir, args.random_init, args.device)
        stream = batches(tokenizer, texts, y, "token_budget" in args.child, size=args.batch_size)
        run(args.child, classifier, optimizer, stream, 4, args.device)
        if args.device.startswith("cuda"):
            print(torch.cuda.max_memory_allocated() / 2**20)
        else:
            print(int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024)
        return
    built = {mode: build(mode, args.cache_dir, args.random_init, args.device) for mode in args.modes}
    streams = {
        m: batches(built[m][2], texts * 20, np.tile(y, (20, 1)), "token_budget" in m, size=args.batch_size)
        for m in args.modes
    }
    for mode in args.modes:  # warm-up (and compilation), not timed
        run(mode, built[mode][0], built[mode][1], streams[mode], 3, args.device)
    if args.profile:
        for mode in args.modes:
            profile(mode, built[mode], streams[mode], args.device)
    rates: dict[str, list[tuple[float, float, float]]] = {m: [] for m in args.modes}
    for r in range(args.rounds):
        for mode in args.modes:
            seconds, tokens, padded = run(mode, built[mode][0], built[mode][1], streams[mode], args.steps, args.device)
            rates[mode].append((args.steps / seconds, tokens / seconds, 1 - tokens / padded))
            print(f"round {r + 1} {mode}: {args.steps / seconds:.2f} steps/s", file=sys.stderr)
    peaks = {}
    for mode in args.modes:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                mode,
                "--splits",
                args.splits,
                "--cache-dir",
                args.cache_dir,
                "--threads",
                str(args.threads),
                "--device",
                args.device,
                "--batch-size",
                str(args.batch_size),
                *(["--random-init"] if args.random_init else []),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[mode] = float(out.stdout.strip().splitlines()[-1])
    cpu = platform.processor() or "unknown"
    try:
        info = open("/proc/cpuinfo").read()
        cpu = re.search(r"model name\s*:\s*(.*)", info).group(1)
        flags = sorted({f for f in re.search(r"flags\s*:\s*(.*)", info).group(1).split() if "amx" in f or "bf16" in f})
    except (OSError, AttributeError):
        flags = []
    base = rates.get("fp32")
    tokens_per_step = statistics.median(len(t.split()) for t in texts) * 1.6 * args.batch_size
    flops = 6 * 12 * (4 * 384 * 384 + 2 * 384 * 1536) * tokens_per_step  # GEMM weights; attention is small here
    print(
        f"\nCPU: {cpu}; flags {' '.join(flags) or 'no amx/bf16'}; {args.threads} threads; "
        f"{args.rounds} rounds of {args.steps} steps of {args.batch_size} sentences\n"
    )
    on_gpu = args.device.startswith("cuda")
    if on_gpu:
        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}\n")
    peak = "peak GPU memory" if on_gpu else "peak RSS"
    print(f"| mode | steps/s | × fp32 (steps/s) | tokens/s | × fp32 (tokens/s) | padding | {peak} |")
    print("|---|---|---|---|---|---|---|")
    for mode in args.modes:
        steps = statistics.median(r[0] for r in rates[mode])
        tokens = statistics.median(r[1] for r in rates[mode])
        pad = statistics.median(r[2] for r in rates[mode])
        # ratios within a round (the same batches for every fixed-size mode), then their median
        ratio = statistics.median(r[0] / b[0] for r, b in zip(rates[mode], base)) if base else float("nan")
        token_ratio = statistics.median(r[1] / b[1] for r, b in zip(rates[mode], base)) if base else float("nan")
        print(
            f"| {mode} | {steps:.2f} | {ratio:.2f} | {tokens:.0f} | {token_ratio:.2f} | {100 * pad:.0f} % "
            f"| {peaks[mode]:.0f} MB |"
        )
    for dtype, name in () if on_gpu else ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        rate = gemm_rate(dtype, args.threads)
        print(
            f"\n{name} GEMM: {rate:.0f} GFLOP/s on {args.threads} threads; at ~{flops / 1e9:.0f} GFLOP per step "
            f"(≈{tokens_per_step:.0f} tokens) the limit is {rate * 1e9 / flops:.2f} steps/s",
            end="",
        )
    print()
    json.dump({m: rates[m] for m in args.modes}, sys.stderr)


if __name__ == "__main__":
    main()
