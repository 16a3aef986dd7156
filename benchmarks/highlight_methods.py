"""Occlusion against integrated gradients (captum) for word highlights, on the transformer member.

    python benchmarks/highlight_methods.py [--model models/default/members/e5_small] [--per-topic 30]

For test sentences positive for a topic (gold; `--per-topic` per topic, the first in file order),
each method ranks the sentence's candidate words (`highlights.candidate_spans`: no function words)
for that topic; deleting its top 3 lowers the topic's score by some amount, and 3 random candidate
words (5 draws) by another. Reported per topic: the mean fall for occlusion, for integrated
gradients (16 steps, a padding baseline, token attributions summed over each word's tokens) and for
random words, and each method's seconds per sentence on one thread (fp32: gradients need it).
Both work on the normalised text the encoder sees, so word offsets agree. IG is torch-only; the
predictor's highlights use occlusion, which needs nothing but `score`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients

from security_topics.data import read_sentences
from security_topics.highlights import candidate_spans, occlusion_weights, without, without_words
from security_topics.labels import LabelSet
from security_topics.models import load_model

TEST = Path("data/processed/security_topics/test.jsonl")


def occlusion_top3(model, text: str, spans, j: int) -> list[tuple[int, int]]:
    probs = model.score([text, *(without(text, s, e) for s, e in spans)]).probs
    weights = occlusion_weights(probs[0], probs[1:])[:, j]
    return [spans[i] for i in np.argsort(-weights, kind="stable")[:3]]


def ig_top3(model, text: str, spans, j: int, steps: int) -> list[tuple[int, int]]:
    prefix = model.card.settings.get("text_prefix", "")
    encoded = model.tokenizer(
        [prefix + text], truncation=True, max_length=model.max_length, return_offsets_mapping=True, return_tensors="pt"
    )
    offsets = encoded.pop("offset_mapping")[0].tolist()
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    pad = model.tokenizer.pad_token_id or 0
    special = torch.tensor([[o == [0, 0] for o in offsets]])  # [CLS]/[SEP] stay in the baseline
    baseline = torch.where(special, ids, torch.full_like(ids, pad))

    def topic_probability(input_ids, attention_mask):
        return torch.sigmoid(model.classifier(input_ids=input_ids, attention_mask=attention_mask)["logits"])[:, j]

    explainer = LayerIntegratedGradients(topic_probability, model.classifier.encoder.get_input_embeddings())
    attributions = explainer.attribute(
        ids, baselines=baseline, additional_forward_args=(mask,), n_steps=steps, internal_batch_size=steps
    )
    per_token = attributions.sum(-1)[0].detach().numpy()
    words = np.zeros(len(spans))
    for t, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        start, end = start - len(prefix), end - len(prefix)
        for w, (ws, we) in enumerate(spans):
            if start < we and end > ws:
                words[w] += per_token[t]
    return [spans[i] for i in np.argsort(-words, kind="stable")[:3]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/default/members/e5_small")
    parser.add_argument("--per-topic", type=int, default=30)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--out", default="experiments/benchmarks/highlight_methods.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model, device="cpu", precision="fp32")
    model.classifier.eval()
    labels = LabelSet.of(model.card.labels)
    sentences = read_sentences(TEST, labels)
    prefix = model.card.settings.get("text_prefix", "")  # the encoder's input is prefix + normalised text
    rng = np.random.default_rng(0)
    report: dict = {"model": args.model, "steps": args.steps, "topics": {}}
    seconds = {"occlusion": 0.0, "integrated_gradients": 0.0}
    count = 0
    for j, name in enumerate(labels.names):
        falls: dict[str, list[float]] = {"occlusion": [], "integrated_gradients": [], "random": []}
        texts = [model.model_inputs([e.text])[0][len(prefix) :] for e in sentences if name in e.labels]
        chosen = [t for t in texts if len(candidate_spans(t)) > 3][: args.per_topic]
        for text in chosen:
            spans = candidate_spans(text)
            base = model.score([text]).probs[0, j]
            t0 = time.perf_counter()
            occluded = occlusion_top3(model, text, spans, j)
            t1 = time.perf_counter()
            integrated = ig_top3(model, text, spans, j, args.steps)
            t2 = time.perf_counter()
            seconds["occlusion"] += t1 - t0
            seconds["integrated_gradients"] += t2 - t1
            count += 1
            drawn = [
                without_words(text, [spans[i] for i in rng.choice(len(spans), 3, replace=False)]) for _ in range(5)
            ]
            scores = model.score([without_words(text, occluded), without_words(text, integrated), *drawn]).probs[:, j]
            falls["occlusion"].append(base - scores[0])
            falls["integrated_gradients"].append(base - scores[1])
            falls["random"].extend(base - scores[2:])
        means = {k: round(float(np.mean(v)), 4) for k, v in falls.items()}
        report["topics"][name] = {"sentences": len(chosen), **means}
        print(name, report["topics"][name], flush=True)
    report["seconds_per_sentence"] = {k: round(v / max(count, 1), 3) for k, v in seconds.items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
