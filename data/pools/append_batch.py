"""Append one labelled batch of single real sentences to data/raw/real_sentences.csv, and compare passes.

    python data/pools/append_batch.py 11 --batch r7     # sentences-11.jsonl + labels-A-s11.jsonl
                                                        # (+ second-pass-s11.jsonl, when there is one)

The first pass (labels-A-sNN.jsonl) gives the labels, except where RESOLVED (in merge_labels.py) settles
a row by the guide; the independent second pass (second-pass-sNN.jsonl, labelled without seeing the
first) is only compared: Cohen's kappa per topic, and each disagreement printed to be settled by the
guide. Rows already in the corpus are never changed or duplicated; every new row keeps its source,
outlet, date, pool id and the batch name (the split places each batch on its own).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from merge_labels import RESOLVED, SOURCE, TOPICS, kappa

HERE = Path(__file__).resolve().parent
RAW_SENTENCES = HERE.parent / "raw" / "real_sentences.csv"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("number", help="NN of labelling/sentences-NN.jsonl")
    parser.add_argument("--batch", required=True, help="the batch name written in the `batch` column, e.g. r7")
    parser.add_argument("--pool", type=Path, default=HERE / "ant.jsonl")
    args = parser.parse_args()
    folder = HERE / "labelling"
    texts = {r["sid"]: r["text"] for r in read_jsonl(folder / f"sentences-{args.number}.jsonl")}
    first = {r["sid"]: r["labels"] for r in read_jsonl(folder / f"labels-A-s{args.number}.jsonl")}
    if set(first) != set(texts):
        raise SystemExit(f"labels-A-s{args.number}.jsonl does not answer exactly the sentences of the batch")
    for sid, labels in first.items():
        unknown = set(labels) - set(TOPICS)
        if unknown:
            raise SystemExit(f"labels-A-s{args.number}.jsonl: {sid}: unknown topics {sorted(unknown)}")
    second_path = folder / f"second-pass-s{args.number}.jsonl"
    if second_path.exists():
        second = {r["sid"]: r["labels"] for r in read_jsonl(second_path)}
        pairs = [(set(first[sid]), set(labels)) for sid, labels in second.items()]
        for topic in TOPICS:
            a, b = [topic in x for x, _ in pairs], [topic in y for _, y in pairs]
            print(f"{topic}: kappa {kappa(a, b):.3f}, positives {sum(a)} / {sum(b)}")
        for sid, labels in second.items():
            if set(first[sid]) != set(labels):
                settled = RESOLVED.get(sid, (first[sid], "first pass kept"))
                print(f"  {sid}: first {first[sid]}, second {labels} -> {list(settled[0])} ({settled[1]})")
    dates = {}
    for line in args.pool.read_text(encoding="utf-8").splitlines():
        article = json.loads(line)
        dates[article["id"]] = (article["outlet"], article["date"])
    with RAW_SENTENCES.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    present = {row["id"] for row in rows}
    added = 0
    for sid, labels in first.items():
        if sid in present:
            continue
        labels = RESOLVED.get(sid, (labels,))[0]
        aid = sid.split("#")[0]
        outlet, date = dates[aid]
        rows.append(
            {
                "id": sid,
                "text": texts[sid],
                "labels": "|".join(t for t in TOPICS if t in labels),
                "source": SOURCE,
                "outlet": outlet,
                "date": date,
                "pool_id": aid,
                "field": "text",
                "batch": args.batch,
            }
        )
        added += 1
    with RAW_SENTENCES.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"appended {added} sentences (batch {args.batch}) to {RAW_SENTENCES}; {len(first) - added} were there")


if __name__ == "__main__":
    main()
