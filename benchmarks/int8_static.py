"""Static (QDQ) int8 against dynamic int8 for the transformer member: drift from fp32 and speed.

    security-topics export models/default models/default-fp32
    python benchmarks/int8_static.py --fp32 models/default-fp32

Static quantisation fixes each activation's scale from calibration sentences (MinMax over
`--calibration` validation sentences not scored below) instead of measuring it per batch. Both
variants quantise every weight MatMul (per-channel int8 weights) and score the same validation
sentences as the fp32 graph at the member's thresholds; speed is the best of three passes over 384
of them on one thread. On the AMD EPYC of the README static lost on both counts, so the export
stays dynamic.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

from security_topics.data import read_sentences
from security_topics.labels import LabelSet
from security_topics.models import load_model
from security_topics.models.card import ModelCard
from security_topics.models.onnx import GRAPH, OnnxModel, open_session


class Batches(CalibrationDataReader):
    """Padded batches of token ids, as the member's tokenizer gives them."""

    def __init__(self, model: OnnxModel, texts: list[str], batch_size: int = 16) -> None:
        ids, _ = model.encode(texts)
        self.feeds = []
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            width = max(map(len, chunk))
            input_ids = np.full((len(chunk), width), model.pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, tokens in enumerate(chunk):
                input_ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            self.feeds.append({"input_ids": input_ids, "attention_mask": mask})
        self.rest = iter(self.feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.rest, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", default="models/default-fp32", help="an fp32 export (no --quantize)")
    parser.add_argument("--member", default="members/e5_small", help="the transformer inside the export")
    parser.add_argument("--splits", default="data/processed/security_topics")
    parser.add_argument("--sentences", type=int, default=935, help="validation sentences scored per variant")
    parser.add_argument("--calibration", type=int, default=256, help="validation sentences after those, for static")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice to pre-process

    member = Path(args.fp32) / args.member
    card = ModelCard.load(member)
    texts = [e.text for e in read_sentences(Path(args.splits) / "validation.jsonl", LabelSet.of(card.labels))]
    scored, calibration = texts[: args.sentences], texts[args.sentences : args.sentences + args.calibration]
    fp32 = load_model(member, num_threads=1)
    reference = fp32.score(scored).probs
    thresholds = np.asarray(card.thresholds)
    print(f"{len(scored)} validation sentences scored, {len(calibration)} for calibration\n")
    print("| variant | mean abs Δp | max abs Δp | label sets changed | sentences/s, 1 thread |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name in ("dynamic", "static QDQ (MinMax)"):
            path = Path(scratch) / f"{name.split()[0]}.onnx"
            if name == "dynamic":
                quantize_dynamic(member / GRAPH, path, per_channel=True, weight_type=QuantType.QInt8)
            else:
                quantize_static(
                    member / GRAPH,
                    path,
                    Batches(fp32, calibration),
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["MatMul"],
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
            model = OnnxModel(card, open_session(path, 1), fp32.tokenizer, member)
            probs = model.score(scored).probs
            delta = np.abs(probs - reference)
            changed = ((probs >= thresholds) != (reference >= thresholds)).any(axis=1).sum()
            rates = []
            for _ in range(3):
                started = time.perf_counter()
                model.score(scored[:384])
                rates.append(len(scored[:384]) / (time.perf_counter() - started))
            print(
                f"| {name} | {delta.mean():.4f} | {delta.max():.3f} | {changed} ({100 * changed / len(scored):.1f} %) "
                f"| {max(rates):.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
