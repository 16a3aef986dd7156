"""Merge the hand labels of ANT excerpts into the corpus: data/raw/real_articles.jsonl and real_sentences.csv.

    python data/pools/merge_labels.py          # after labelling data/pools/labelling/articles-NN.jsonl

Sentence batches (sentences-NN.jsonl, chosen by `security-topics suggest` and by the model's own
positives: data/pools/choose_articles.py rounds 3 and 4) are answered in labels-A-sNN.jsonl.
First-pass answers (labels-A-NN.jsonl) are the labels; the independent second pass (labels-B-NN.jsonl)
is compared with them (Cohen's kappa per topic, printed) and its disagreements were resolved by the
guide in RESOLVED below. Every row keeps its source, outlet, date and pool id.

It rebuilt the files whole for rounds 1-5 and needs their labelling files; later batches (round 6 on,
with a `batch` column) are appended by append_batch.py, which changes no earlier row.
"""

from __future__ import annotations

import csv
import glob
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAW = HERE.parent / "raw"
TOPICS = ("counterterrorism", "narcotics", "cybersecurity", "aviation", "sports_security")
SOURCE = "ant"
# id -> (labels, why): the second pass's disagreements with the first, settled by data/ANNOTATION.md.
RESOLVED = {
    # `security-topics review-labels` over the corpus (data/README.md): flagged rows, reviewed by the guide
    "ant-JA-internationalNews-1096-20170605": ((), "terrorism support is an added reason for a flight ban, in passing"),
    "ant-JA-internationalNews-1096-20170605#3": ((), "the same accusation, in passing, in the sentence"),
    "ant-JA-diverse-349-20170515#4": (
        (),
        "the cake-box argument, as its twin ant-JA-diverse-359-20170515#4: no unruly passenger",
    ),
    "ant-JA-localNews-4417-20170606#1": ((), "terrorism is one danger named in passing in a story on development aid"),
    "ant-JA-localNews-4417-20170606": ((), "no sentence carries a topic once #1 is none"),
    # Round 7 (append_batch.py 11): the two passes' disagreements, settled by the guide
    "ant-JA-internationalNews-271-20170214#6": (
        (),
        "an aircraft's engineering (redundant engines) at its launch, no incident or rule",
    ),
    "ant-JA-sport-518-20161028#6": (
        (),
        "a traffic notice's car park for one club's fans: logistics, not crowd control",
    ),
    "ant-JA-diverse-37-20170124#2": (
        (),
        "travellers identified by face instead of passport: border control at airports",
    ),
    "ant-JA-diverse-139-20160226#3": ((), "how a mouse came aboard: the sentence names no safety event"),
    "ant-JA-localNews-3035-20160219#5": (
        ("counterterrorism",),
        "the counter-terrorism court's own working conditions are its subject",
    ),
    "ant-JA-localNews-4716-20170608#2": (
        ("cybersecurity",),
        "«these attempts» describes the hacking itself (how it grows, its methods), not an aftermath",
    ),
    # Round 8 (append_batch.py 12): the two passes' disagreements, settled by the guide
    "ant-JA-localNews-3028-20170318#2": (
        ("aviation",),
        "a shooting at the airport closes it; the sentence frames no attack or group: aviation alone",
    ),
    "ant-JA-localNews-2491-20170309#1": (
        (),
        "an unnamed incident that stopped the airline's flights: neither safety nor security",
    ),
    # Round 9 (append_batch.py 13): the two passes' disagreements, settled by the guide
    "ant-JA-internationalNews-532-20160613#3": (
        (),
        "the police say the killing's motive is not known, terrorist or criminal: no framing",
    ),
    "ant-JA-internationalNews-222-20170210#4": (
        (),
        "a court on the travel ban finds no evidence of terror attacks: migration policy",
    ),
    "ant-JA-localNews-1049-20170209#2": (
        (),
        "an antiquities seizure; the suspect's takfiri views are his background, as drug use is",
    ),
    # Round 10 (append_batch.py 14): the two passes' disagreements, settled by the guide
    "ant-JA-internationalNews-895-20160921#2": (
        (),
        "an unclaimed bomb alert at a campus: a bomb threat with no group named",
    ),
    "ant-JA-internationalNews-465-20160719#3": (
        (),
        "a lone attacker's axe attack that the sentence does not frame (only the title does)",
    ),
    "ant-JA-internationalNews-847-20170320#2": (
        (),
        "injured passengers: the sentence does not say of what, the title does",
    ),
    "ant-JA-internationalNews-523-20160716#3": (
        ("counterterrorism",),
        "a festival cancelled after the 14 July attack in Nice, a known terrorist attack named by place and date",
    ),
    # `security-topics review-labels` after round 9: 25 of its rows flagged, read by the guide, 2 changed
    "ant-JA-society-260-20161110#1": (
        ("counterterrorism",),
        "a round-up that arrests a man wanted by the counter-terrorism squad, as the corpus's other round-ups",
    ),
    "ant-JA-internationalNews-402-20150427#2": (
        ("counterterrorism",),
        "terrorism is the first of the dangers the statement is about, as a minister naming it the main threat",
    ),
    # `security-topics review-labels` after round 10: 5 of its rows flagged, read by the guide, 2 changed
    "ant-JA-internationalNews-283-20161214#3": (
        (),
        "parties and «the danger of attacks» before an election: unnamed attacks, politics",
    ),
    "ant-JA-localNews-4126-20150702#1": (
        (),
        "clashes over a mosque's closure: the sentence names no extremism, unrest",
    ),
    # round 11: the first pass and the blind second pass disagreed on 1 of 32 sentences, settled by the guide
    "ant-JA-sport-615-20170303#2": (
        (),
        "«the assault took place after the match» refers back to an assault it does not describe",
    ),
}


def load(kind: str) -> dict[str, dict]:
    out = {}
    for path in sorted(glob.glob(str(HERE / "labelling" / f"labels-{kind}-[0-9]*.jsonl"))):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                out[record["id"]] = record
    return out


def kappa(a: list[int], b: list[int]) -> float:
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def agreement(first: dict[str, dict], second: dict[str, dict]) -> dict:
    """Cohen's kappa per topic on the doubly labelled sentences and articles."""
    report = {"articles": len(second), "sentences": sum(len(r["sentences"]) for r in second.values())}
    for level in ("sentence", "article"):
        pairs = []
        for aid, b in second.items():
            a = first[aid]
            if level == "article":
                pairs.append((set(a["labels"]), set(b["labels"])))
            else:
                pairs += [(set(a["sentences"][sid]), set(labels)) for sid, labels in b["sentences"].items()]
        report[level] = {
            t: {
                "kappa": round(kappa([t in x for x, _ in pairs], [t in y for _, y in pairs]), 3),
                "positives": [sum(t in x for x, _ in pairs), sum(t in y for _, y in pairs)],
            }
            for t in TOPICS
        }
        report[f"{level}_disagreements"] = sum(x != y for x, y in pairs)
    return report


def main() -> None:
    pool = {json.loads(line)["id"]: json.loads(line) for line in (HERE / "ant.jsonl").read_text().splitlines()}
    batches = {}
    for path in sorted(glob.glob(str(HERE / "labelling" / "articles-*.jsonl"))):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            batches[json.loads(line)["id"]] = json.loads(line)
    first, second = load("A"), load("B")
    print(json.dumps(agreement(first, second), indent=1))
    articles, sentences = [], []
    for aid in sorted(first, key=lambda i: (pool[i]["date"], i)):
        answer, article, batch = first[aid], pool[aid], batches[aid]
        labels = RESOLVED.get(aid, (answer["labels"],))[0]
        meta = {"source": SOURCE, "outlet": article["outlet"], "date": article["date"], "pool_id": aid}
        articles.append(
            {
                "id": aid,
                "title": article["title"],
                "text": article["text"],
                "labels": [t for t in TOPICS if t in labels],
                "kind": "real",
                **meta,
                "category": article["category"],
                "url": article["url"],
            }
        )
        for span in batch["sentences"]:
            sid = span["sid"]
            if not span["text"].strip():
                continue
            labels = RESOLVED.get(sid, (answer["sentences"][sid],))[0]
            sentences.append(
                {
                    "id": sid,
                    "text": span["text"],
                    "labels": "|".join(t for t in TOPICS if t in labels),
                    **meta,
                    "field": span["source"],
                }
            )
    single = {}
    for path in sorted(glob.glob(str(HERE / "labelling" / "sentences-*.jsonl"))):
        answers = Path(path).with_name(Path(path).name.replace("sentences-", "labels-A-s"))
        texts = {r["sid"]: r["text"] for r in map(json.loads, Path(path).read_text(encoding="utf-8").splitlines())}
        for record in map(json.loads, answers.read_text(encoding="utf-8").splitlines()):
            single[record["sid"]] = (texts[record["sid"]], record["labels"])
    for sid, (text, labels) in sorted(single.items()):
        aid = sid.split("#")[0]
        labels = RESOLVED.get(sid, (labels,))[0]
        article = pool[aid]
        meta = {"source": SOURCE, "outlet": article["outlet"], "date": article["date"], "pool_id": aid}
        sentences.append(
            {"id": sid, "text": text, "labels": "|".join(t for t in TOPICS if t in labels), **meta, "field": "text"}
        )
    with (RAW / "real_articles.jsonl").open("w", encoding="utf-8") as f:
        for record in articles:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    with (RAW / "real_sentences.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(sentences[0]))
        writer.writeheader()
        writer.writerows(sentences)
    print(f"wrote {len(articles)} articles and {len(sentences)} sentences ({len(single)} outside them) to {RAW}")


if __name__ == "__main__":
    main()
