"""Check a labelling batch's answers against its batch: every article and sentence answered, known topics.

python data/pools/check_labels.py data/pools/labelling/labels-A-01.jsonl data/pools/labelling/articles-01.jsonl
"""

from __future__ import annotations

import json
import sys

TOPICS = {"counterterrorism", "narcotics", "cybersecurity", "aviation", "sports_security"}


def check_sentences(answers: str, batch: str) -> int:
    """Sentence batches: one `{"sid", "text"}` per line, answered by one `{"sid", "labels"}` per line."""
    wanted = [json.loads(line)["sid"] for line in open(batch, encoding="utf-8").read().splitlines() if line.strip()]
    problems, seen = [], set()
    for n, line in enumerate(open(answers, encoding="utf-8").read().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"line {n}: not JSON ({err})")
            continue
        sid, labels = record.get("sid"), record.get("labels")
        if sid not in wanted:
            problems.append(f"line {n}: unknown sid {sid!r}")
        elif sid in seen:
            problems.append(f"line {n}: sid {sid!r} answered twice")
        if not isinstance(labels, list) or set(labels) - TOPICS:
            problems.append(f"line {n} ({sid}): field 'labels' must be a list of {sorted(TOPICS)}, got {labels!r}")
        seen.add(sid)
    problems += [f"sentence {sid} has no answer" for sid in wanted if sid not in seen]
    for p in problems:
        print("error:", p)
    print(f"{len(seen & set(wanted))} of {len(wanted)} sentences answered, {len(problems)} problem(s)")
    return 1 if problems else 0


def main(answers: str, batch: str) -> int:
    first = json.loads(open(batch, encoding="utf-8").readline())
    if "sid" in first:
        return check_sentences(answers, batch)
    articles = {a["id"]: a for a in map(json.loads, open(batch, encoding="utf-8").read().splitlines())}
    problems, seen = [], set()
    for n, line in enumerate(open(answers, encoding="utf-8").read().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"line {n}: not JSON ({err})")
            continue
        aid = record.get("id")
        if aid not in articles:
            problems.append(f"line {n}: unknown article id {aid!r}")
            continue
        seen.add(aid)
        labels = record.get("labels")
        if not isinstance(labels, list) or set(labels) - TOPICS:
            problems.append(f"line {n} ({aid}): field 'labels' must be a list of {sorted(TOPICS)}, got {labels!r}")
            continue
        sentences = record.get("sentences")
        if not isinstance(sentences, dict):
            problems.append(f"line {n} ({aid}): field 'sentences' must be an object sid -> list of topics")
            continue
        wanted = [s["sid"] for s in articles[aid]["sentences"] if s["text"].strip()]
        missing = [sid for sid in wanted if sid not in sentences]
        extra = [sid for sid in sentences if sid not in wanted]
        if missing or extra:
            problems.append(f"line {n} ({aid}): sentences missing {missing} unknown {extra}")
        union: set[str] = set()
        for sid, topics in sentences.items():
            if not isinstance(topics, list) or set(topics) - TOPICS:
                problems.append(f"line {n} ({aid}): sentence {sid}: must be a list of topics, got {topics!r}")
            else:
                union |= set(topics)
        if union != set(labels):
            print(
                f"note: {aid}: article labels {sorted(labels)} differ from the union of its sentences' "
                f"{sorted(union)} (fine only when a sentence label is a passing mention, or the topic is "
                "carried across sentences)"
            )
    for aid in articles:
        if aid not in seen:
            problems.append(f"article {aid} has no answer")
    for p in problems:
        print("error:", p)
    print(f"{len(seen)} of {len(articles)} articles answered, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
