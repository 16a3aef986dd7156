"""Which weight MatMuls of the exported encoder lose most to int8: quantise all but one group, measure.

    security-topics export models/default models/default-fp32
    python benchmarks/int8_sensitivity.py --fp32 models/default-fp32 [--sentences 400] [--role-per-layer ffn_out]

The transformer member's fp32 graph is quantised (ONNX Runtime dynamic int8, per-channel weights)
whole and with each group of weight MatMuls kept in fp32 — one group per role across the 12 layers
(query, key, value, attention output, feed-forward in, feed-forward out), with `--layers` one
per layer, and with `--role-per-layer ROLE` that role's MatMul in one layer at a time — and each
variant scores the same validation sentences as the fp32 graph. Reported per variant: the mean and
the largest change of a score, and the sentences whose label set changes at the member's thresholds.
The groups whose fp32 copy removes most of the drift are the ones `export --keep-fp32` should keep
(group names as `security_topics.export.weight_matmul_groups` gives them: `ffn_out`, `layer4`, `layer4.ffn_out`).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import QuantType, quantize_dynamic

from security_topics.data import read_sentences
from security_topics.export import ROLES, weight_matmul_groups
from security_topics.labels import LabelSet
from security_topics.models import load_model
from security_topics.models.card import ModelCard
from security_topics.models.onnx import GRAPH, OnnxModel, open_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", default="models/default-fp32", help="an fp32 export (no --quantize)")
    parser.add_argument("--member", default="members/e5_small", help="the transformer inside the export")
    parser.add_argument("--splits", default="data/processed/security_topics")
    parser.add_argument("--sentences", type=int, default=400, help="validation sentences scored per variant")
    parser.add_argument("--layers", action="store_true", help="also one variant per layer (each takes minutes)")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help="only these variants ('all int8' and group names)")
    parser.add_argument(
        "--role-per-layer",
        metavar="ROLE",
        choices=ROLES,
        help="also one variant per layer keeping only ROLE's MatMul there",
    )
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice to pre-process, once per variant

    member = Path(args.fp32) / args.member
    card = ModelCard.load(member)
    labels = LabelSet.of(card.labels)
    texts = [e.text for e in read_sentences(Path(args.splits) / "validation.jsonl", labels)][: args.sentences]
    fp32 = load_model(member, num_threads=1)
    reference = fp32.score(texts).probs
    thresholds = np.asarray(card.thresholds)
    groups = weight_matmul_groups(member / GRAPH)
    chosen = [name for name in groups if "." not in name and (args.layers or name in ROLES)]
    if args.role_per_layer:
        chosen += [name for name in groups if name.endswith(f".{args.role_per_layer}")]
    if args.only:
        unknown = set(args.only) - {"all int8", *groups}
        if unknown:
            parser.error(f"--only: unknown variants {sorted(unknown)}")
        chosen = [name for name in args.only if name != "all int8"]
    variants = {"all int8": [], **{f"{name} in fp32": groups[name] for name in chosen}}
    if args.only and "all int8" not in args.only:
        del variants["all int8"]
    print(f"{len(texts)} validation sentences; {sum(len(groups[r]) for r in ROLES)} weight MatMuls in the layers\n")
    print("| variant | MatMuls kept in fp32 | mean abs Δp | max abs Δp | label sets changed |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        quantised = Path(scratch) / GRAPH
        for name, keep in variants.items():
            quantize_dynamic(
                member / GRAPH, quantised, per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=keep
            )
            model = OnnxModel(card, open_session(quantised, 1), fp32.tokenizer, member)
            probs = model.score(texts).probs
            delta = np.abs(probs - reference)
            changed = ((probs >= thresholds) != (reference >= thresholds)).any(axis=1).sum()
            print(
                f"| {name} | {len(keep)} | {delta.mean():.4f} | {delta.max():.3f} | "
                f"{changed} ({100 * changed / len(texts):.1f} %) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
