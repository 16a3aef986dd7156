"""Real sentences the model scores in a band for a topic, from unlabelled training-period articles.

    python data/pools/choose_near_misses.py --model models/default      # round 6, after data/pools/ant.py
    python data/pools/choose_near_misses.py --model models/pipeline --min-score 0.05 --max-score 0.9 \
        --quota aviation=80 counterterrorism=50 cybersecurity=20 --out data/pools/labelling/sentences-11.jsonl
                                                                        # round 7
    python data/pools/choose_near_misses.py --model models/pipeline --min-score 0 --max-score 1.01 \
        --quota aviation=70 --pattern "aviation=$ROUND8_AVIATION" --out data/pools/labelling/sentences-12.jsonl
                                                                        # round 8 (ROUND8_AVIATION below)
    python data/pools/choose_near_misses.py --min-score 0 --max-score 1.01 --random 150 \
        --quota counterterrorism=420 aviation=420 sports_security=300 cybersecurity=90 narcotics=16 \
        --out data/pools/labelling/sentences-13.jsonl                  # round 9 (no model needed)
    python data/pools/choose_near_misses.py --beyond-keywords --min-score 0.1 --max-score 1.01 \
        --quota counterterrorism=300 aviation=100 sports_security=100 cybersecurity=60 narcotics=60 \
        --random 100 --out data/pools/labelling/sentences-14.jsonl     # round 10
    python data/pools/choose_near_misses.py --min-score 0 --max-score 1.01 --quota sports_security=1000 \
        aviation=1000 --pattern "sports_security=$ROUND11_SPORTS" "aviation=$ROUND8_AVIATION" \
        --out data/pools/labelling/sentences-15.jsonl                  # round 11 (ROUND11_SPORTS below)

Written for what the validation real news showed (data/README.md): most article false alarms were
ordinary airline and airport stories given `aviation`, then military and crime stories given
`counterterrorism` and drink or contraband given `narcotics`. Candidates are sentences of six words or
more, from pool articles dated before HOLDOUT_FROM that are not labelled as articles, not yet in the
corpus (after normalisation), that match a topic's KEYWORDS and that the model scores ≥ MIN_SCORE for
it (raw score; between --min-score and --max-score). Round 7 took the band under the thresholds,
where the validation real news showed missed aviation and counterterrorism sentences (data/README.md).
One sentence per article and topic, a seeded sample of QUOTA per topic, written to
labelling/sentences-10.jsonl (git-ignored) in a shuffled order that does not show the topic or score.
Whatever they turn out to be is labelled: the model's near misses and its real positives alike.
`--pattern TOPIC=REGEX` matches a topic with REGEX instead of its KEYWORDS, before the other topics'
keywords; only the topics of the quota are scored. Round 8 took aircraft incidents and aviation
security at any score (ROUND8_AVIATION), after the validation real news showed round 7's near misses
(mostly military and ordinary flights, labelled `none`) costing aircraft-crash recall.
Round 9 took keyword hits at any score, in volume (the band [0, 1.01) scores nothing, so no model is
loaded), and `--random N` adds a seeded uniform sample of N sentences that match no topic's keywords
(one per article), so the real news of the training period is labelled as it is, not only its hard cases.
Round 10 took `--beyond-keywords`: the sentences that match no topic's keywords, scored by the model,
in the band per topic. Round 11 took every remaining sentence with a violence or security-measure word
and a match word (ROUND11_SPORTS), and round 8's aviation pattern again, at any score: what the pool's
training period still held for its two thinnest topics. Round 9's positives were all keyword hits, and
the models trained on them lost counterterrorism recall on attacks and cells described without «إرهاب»
(experiments/README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from pathlib import Path

from choose_articles import HOLDOUT_FROM, KEYWORDS
from merge_labels import TOPICS

HERE = Path(__file__).resolve().parent
MIN_SCORE = 0.3
# An aircraft word and an incident or security word in the same sentence («الأمطار» is no airport).
ROUND8_AVIATION = (
    r"^(?=.*(طائر|مروحي|هليكوبتر|هيليكوبتر|الطيار|الطيران|رحلة جوية|الرحلات الجوية|متن الرحلة|"
    r"(?<!أ)مطار))"
    r"(?=.*(تحطم|تحطّم|سقوط|سقطت|هبوط اضطراري|هبوطا اضطراريا|اضطراري|الصندوق الأسود|اختطاف|خطف|مطب|عطل|عطب|"
    r"تفتيش|أمن المطار|سلامة|حادث|قنبلة|تهديد|مسدس|ممنوع|حظر))"
)
# A violence or security-measure word and a match word in the same sentence.
ROUND11_SPORTS = (
    r"^(?=.*(شغب|عنف|اعتداء|إعتداء|شماريخ|الويكلو|ويكلو|بدون جمهور|دون جمهور|دون حضور الجمهور|اقتحام|إقتحام|"
    r"تدافع|الغاز المسيل|مشاغب|بالحجارة|تأمين))"
    r"(?=.*(ملعب|مقابلة|المقابلة|مباراة|المباراة|جماهير|أحباء|الأحباء|الجمهور|مشجع|اللاعب|الحكم|الرابطة|"
    r"الفريق|النادي))"
)
QUOTA = {"aviation": 90, "counterterrorism": 60, "narcotics": 40, "cybersecurity": 20, "sports_security": 20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=HERE / "ant.jsonl")
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--out", type=Path, default=HERE / "labelling" / "sentences-10.jsonl")
    parser.add_argument("--min-score", type=float, default=MIN_SCORE)
    parser.add_argument("--max-score", type=float, default=1.0, help="exclusive")
    parser.add_argument("--quota", nargs="*", default=[], metavar="TOPIC=N", help=f"instead of {QUOTA}")
    parser.add_argument("--pattern", nargs="*", default=[], metavar="TOPIC=REGEX", help="instead of KEYWORDS")
    parser.add_argument("--random", type=int, default=0, metavar="N", help="N sentences matching no keywords")
    parser.add_argument("--beyond-keywords", action="store_true", help="score the sentences matching no keywords")
    args = parser.parse_args()
    quotas = {k: int(v) for k, v in (q.split("=") for q in args.quota)} if args.quota else QUOTA
    overrides = dict(p.split("=", 1) for p in args.pattern)
    patterns = {**overrides, **{t: p for t, p in KEYWORDS.items() if t not in overrides}}
    from security_topics import Predictor
    from security_topics.text import dedup_key, split_sentences

    raw = HERE.parent / "raw"
    files = ("real_sentences.csv", "sentences.csv")
    known = {dedup_key(r["text"]) for f in files for r in csv.DictReader((raw / f).open(encoding="utf-8"))}
    labelled = {json.loads(line)["id"] for line in (raw / "real_articles.jsonl").read_text().splitlines()}
    pool = [json.loads(line) for line in args.pool.read_text(encoding="utf-8").splitlines()]
    items: list[tuple[str, str, str]] = []  # (sid, text, topic whose keywords it matches)
    others: dict[str, list[tuple[str, str]]] = {}  # article -> its sentences that match no keywords
    for article in pool:
        if article["date"] >= HOLDOUT_FROM or article["id"] in labelled:
            continue
        for i, sentence in enumerate(split_sentences(article["text"]), 1):
            key = dedup_key(sentence.text)
            if len(sentence.text.split()) < 6 or key in known:
                continue
            for topic, pattern in patterns.items():
                if re.search(pattern, sentence.text):
                    known.add(key)
                    items.append((f"{article['id']}#{i}", sentence.text, topic))
                    break
            else:
                others.setdefault(article["id"], []).append((f"{article['id']}#{i}", sentence.text))
    if args.beyond_keywords:  # any topic may take them: matched is None
        items = [(sid, text, None) for sentences in others.values() for sid, text in sentences]
    else:
        items = [item for item in items if item[2] in quotas]
    labels = list(TOPICS)
    if args.min_score <= 0 and args.max_score > 1:
        scores = [[0.0] * len(labels) for _ in items]  # every score is in the band: nothing to score
    else:
        predictor = Predictor.load(args.model, precision="auto", num_threads=2)
        labels, scores = predictor.labels, predictor.raw_scores([text for _, text, _ in items])
    rng = random.Random(args.seed)
    chosen: list[dict] = []
    for topic, quota in quotas.items():
        j = labels.index(topic)
        picked = {c["sid"] for c in chosen}  # a sentence in two topics' bands is taken once
        seen: set[str] = set()  # one sentence per article and topic
        candidates = []
        for (sid, text, matched), row in zip(items, scores):
            article = sid.split("#")[0]
            in_band = matched in (topic, None) and args.min_score <= row[j] < args.max_score
            if in_band and article not in seen and sid not in picked:
                seen.add(article)
                candidates.append({"sid": sid, "text": text})
        rng.shuffle(candidates)
        chosen += candidates[:quota]
        print(f"{topic}: {len(candidates)} candidates, {min(quota, len(candidates))} taken")
    taken = {c["sid"].split("#")[0] for c in chosen}
    rest = []
    for aid, sentences in others.items():
        sid, text = rng.choice(sentences)
        key = dedup_key(text)
        if aid not in taken and key not in known:
            known.add(key)
            rest.append({"sid": sid, "text": text})
    rng.shuffle(rest)
    chosen += rest[: args.random]
    if args.random:
        print(f"no keywords: {len(rest)} candidates, {min(args.random, len(rest))} taken")
    rng.shuffle(chosen)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in chosen)
    print(f"{len(chosen)} sentences in {args.out}")


if __name__ == "__main__":
    main()
