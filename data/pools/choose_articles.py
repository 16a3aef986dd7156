"""Choose the ANT articles to label by hand, and write them as labelling batches.

    python data/pools/choose_articles.py --model models/default        # after data/pools/ant.py

Security stories are a small share of a general news pool, so the choice is pre-filtered:
1. every pool article of 2 to 30 sentences is scored by the current model (article scores by its
   article rule, and its best sentence's score per topic), cached in data/pools/ant_scores.jsonl;
2. per topic, candidates are the articles whose text matches the topic's keywords (KEYWORDS) or
   whose best sentence scores ≥ 0.2 for it; from them we take, seeded, half of the quota from the
   model's confident articles (article score ≥ its threshold) and half from the rest (keyword hits
   the model misses, and near-threshold articles), so misses and false alarms are both labelled;
3. hard negatives: sports, economy, technology and local crime stories that share vocabulary with a
   topic but score low;
4. a uniform random sample of the period, so evaluation is not biased toward hard cases.
The pool's last months (date ≥ HOLDOUT_FROM) are chosen separately: they become `test_real`.
Batches of about 25 articles go to data/pools/labelling/ (git-ignored), each sentence with an id.

`--round 3` writes the pools for `security-topics suggest` to choose single sentences from (their
articles are not labelled as articles): the training period's unlabelled articles that match a
topic's keywords or whose best sentence scores ≥ 0.2 for a topic (`supplement_pool.jsonl`), and of
those, the ones matching the sports NARROW keywords or scoring ≥ 0.1 for sports_security, the topic
the first two rounds left thinnest in sentences (`supplement_pool_sports.jsonl`).

`--round 4` takes, for the topics still thin in sentences after that (sports_security, narcotics),
every sentence of the supplement pool the model scores ≥ 0.3 for them that `suggest` did not pick
(`sentences-04.jsonl`): the model's own positives, to label whatever they turn out to be.

`--round 5` looks for the sentence shape the model failed on in the seed article, a list of areas
that names several topics: training-period sentences of six words or more matching LIST_KEYWORDS of
two topics or more, not labelled yet (`sentences-08.jsonl`; it found 6).

`--round 2` adds articles for what the first round left thin (measured on its labels: the model's
positives held the topic in 50-100 % of cases, keyword-only candidates in 5 %, uniform ones in 10 %):
every article the model gives two or more topics, and for aviation, sports_security, narcotics and
cybersecurity the model's remaining positives plus narrow keyword hits (NARROW), half from each period.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOLDOUT_FROM = "2017-04-01"
KEYWORDS = {
    "counterterrorism": r"إرهاب|داعش|تكفيري|جهادي|انتحاري|متطرف|تطرف|بؤر التوتر|القاعدة|أنصار الشريعة|عقبة بن نافع"
    r"|جند الخلافة|خلية نائمة|خلايا نائمة|التسفير",
    "narcotics": r"مخدر|زطلة|القنب|كوكايين|هيروين|حشيش|أقراص مخدرة|الكيف|قانون 52|الإدمان|ترويج المخدرات|مؤثرات عقلية",
    "cybersecurity": r"قرصن|اختراق|سيبرن|سيبراني|الجرائم الإلكترونية|الجريمة الإلكترونية|فيروس|هاكر|المعلوماتية"
    r"|برمجيات خبيثة|فدية|تصيد|الأمن الإلكتروني|هجوم إلكتروني|هجمات إلكترونية|الحسابات|كلمة السر",
    "aviation": r"مطار|طائرة|طائرات|الطيران|الملاحة الجوية|درون|الخطوط التونسية|رحلة|المسافرين|الركاب|الجوية",
    "sports_security": r"شغب|بدون جمهور|دون جمهور|الويكلو|أحباء|الجماهير|جماهير|ملعب|الملاعب|المدارج|العنف في الملاعب"
    r"|تأمين المباراة|المباراة",
}
NARROW = {
    "sports_security": r"شغب|أعمال عنف|أحداث عنف|اعتداء على الحكم|اقتحام الملعب|الشماريخ|الألعاب النارية|ويكلو"
    r"|بدون جمهور|دون حضور الجمهور|العنف في الملاعب|تأمين المقابلة|تأمين المباراة",
    "cybersecurity": r"قرصنة|قراصنة|اختراق|هاكر|فيروس|برمجية خبيثة|برمجيات خبيثة|الجرائم الإلكترونية"
    r"|الجريمة الإلكترونية|الجرائم المعلوماتية|هجوم إلكتروني|هجمات إلكترونية|فدية",
    "aviation": r"أمن المطار|أمن الطيران|سلامة الطيران|الطيران المدني|اختطاف طائرة|حادث طائرة|تحطم طائرة"
    r"|سقوط طائرة|هبوط اضطراري|المراقبة الجوية|الأجهزة الإلكترونية على متن|درون|طائرات بدون طيار",
}
LIST_KEYWORDS = {
    "counterterrorism": r"الإرهاب|الارهاب|التطرف",
    "narcotics": r"المخدرات|المخدّرات",
    "cybersecurity": r"السيبرن|السيبراني|المعلوماتية|الإلكترونية|الالكترونية",
    "aviation": r"الطيران|المطارات|الملاحة الجوية",
    "sports_security": r"الملاعب|التظاهرات الرياضية|الفعاليات الرياضية",
}
# Round 2, per topic: (the model's positives, narrow keyword hits), each split between the periods.
ROUND2 = {"aviation": (36, 16), "sports_security": (20, 34), "narcotics": (24, 0), "cybersecurity": (8, 30)}
# Per period: articles per topic's candidates, hard negatives, uniform random.
QUOTAS = {"train": (30, 25, 35), "test_real": (16, 12, 20)}
BATCH = 25


def score_pool(pool: list[dict], model: str, cache: Path) -> dict[str, dict]:
    """Article scores and best-sentence scores per topic of every pool article (cached)."""
    if cache.is_file():
        return {r["id"]: r for r in map(json.loads, cache.read_text(encoding="utf-8").splitlines())}
    from tqdm import tqdm

    from security_topics import Predictor

    predictor = Predictor.load(model, precision="auto", num_threads=2)
    out = {}
    for start in tqdm(range(0, len(pool), 64), desc="scoring the pool", unit="batch"):
        chunk = pool[start : start + 64]
        results = predictor.predict_articles([a["text"] for a in chunk], titles=[a["title"] for a in chunk])
        for article, result in zip(chunk, results):
            best = {n: max((s.scores.get(n, 0.0) for s in result.sentences), default=0.0) for n in predictor.labels}
            out[article["id"]] = {
                "id": article["id"],
                "labels": list(result.labels),
                "article": result.scores,
                "best_sentence": best,
                "article_thresholds": dict(zip(predictor.labels, predictor.article_thresholds.tolist())),
            }
    cache.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out.values()), encoding="utf-8")
    return out


def choose(pool: list[dict], scores: dict[str, dict], period: str, seed: int, taken: set[str]) -> list[tuple[str, str]]:
    """(article id, why) for one period, in the order chosen."""
    rng = random.Random(f"{seed}-{period}")
    per_topic, hard, uniform = QUOTAS[period]
    chosen: list[tuple[str, str]] = []

    def take(candidates: list[dict], n: int, why: str) -> None:
        candidates = [a for a in candidates if a["id"] not in taken]
        rng.shuffle(candidates)
        for article in candidates[:n]:
            taken.add(article["id"])
            chosen.append((article["id"], why))

    for topic, pattern in KEYWORDS.items():
        keyword = re.compile(pattern)
        candidates = [
            a
            for a in pool
            if keyword.search(a["title"] + " " + a["text"]) or scores[a["id"]]["best_sentence"][topic] >= 0.2
        ]
        confident = [a for a in candidates if topic in scores[a["id"]]["labels"]]
        rest = [a for a in candidates if topic not in scores[a["id"]]["labels"]]
        take(confident, per_topic // 2, f"{topic}: model gives it")
        take(rest, per_topic - per_topic // 2, f"{topic}: keyword or near threshold, model does not give it")
    neighbours = [
        a
        for a in pool
        if a["category"] in ("sport", "economy", "technology", "society", "localNews")
        and not scores[a["id"]]["labels"]
        and max(scores[a["id"]]["best_sentence"].values()) >= 0.05
    ]
    take(neighbours, hard, "hard negative: shares vocabulary, model gives nothing")
    take(list(pool), uniform, "uniform random")
    return chosen


def choose_round2(pool: list[dict], scores: dict[str, dict], seed: int, taken: set[str]) -> list[tuple[str, str]]:
    rng = random.Random(f"{seed}-round2")
    chosen: list[tuple[str, str]] = []

    def take(candidates: list[dict], n: int, why: str) -> None:
        for period in ("test_real", "train"):
            members = [a for a in candidates if a["id"] not in taken and _period(a) == period]
            rng.shuffle(members)
            for article in members[: (n + 1) // 2 if period == "test_real" else n - (n + 1) // 2]:
                taken.add(article["id"])
                chosen.append((article["id"], why))

    multi = [a for a in pool if len(scores[a["id"]]["labels"]) >= 2]
    take(multi, len(multi), "round 2: the model gives two or more topics")
    for topic, (positives, narrow) in ROUND2.items():
        take([a for a in pool if topic in scores[a["id"]]["labels"]], positives, f"{topic}: round 2, model gives it")
        keyword = re.compile(NARROW.get(topic, "(?!)"))
        hits = [a for a in pool if keyword.search(a["title"] + " " + a["text"])]
        take(hits, narrow, f"{topic}: round 2, narrow keyword")
    return chosen


def write_round4(out: Path, chosen: list[tuple[str, str]]) -> None:
    """Drop repeats and near-duplicates (of labelled rows, earlier batches and each other: character
    5-gram cosine ≥ 0.8) and deal the rest into four batches, sentences-04 … 07."""
    import csv

    from security_topics.suggest import _max_cosine, surface_vectors
    from security_topics.text import dedup_key

    seen, unique = set(), []
    for sid, text in chosen:
        if dedup_key(text) not in seen:
            seen.add(dedup_key(text))
            unique.append({"sid": sid, "text": text})
    raw = HERE.parent / "raw"
    labelled = [r["text"] for f in ("real_sentences.csv", "sentences.csv") for r in csv.DictReader((raw / f).open())]
    for name in ("sentences-01", "sentences-02", "sentences-03"):
        labelled += [json.loads(line)["text"] for line in (out / f"{name}.jsonl").read_text().splitlines()]
    vectors = surface_vectors([r["text"] for r in unique] + labelled)
    fresh = [r for r, near in zip(unique, _max_cosine(vectors[: len(unique)], vectors[len(unique) :])) if near < 0.8]
    own = surface_vectors([r["text"] for r in fresh])
    kept: list[int] = []
    for i in range(len(fresh)):
        if not kept or _max_cosine(own[[i]], own[kept])[0] < 0.8:
            kept.append(i)
    rows = [fresh[i] for i in kept]
    for b in range(4):
        with (out / f"sentences-{b + 4:02d}.jsonl").open("w", encoding="utf-8") as f:
            for row in rows[b::4]:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"round 4: {len(rows)} after repeats and near-duplicates, in sentences-04 … 07")


def _period(article: dict) -> str:
    return "test_real" if article["date"] >= HOLDOUT_FROM else "train"


def sentences_of(article: dict) -> list[dict]:
    from security_topics.text import split_sentences

    spans = [{"sid": f"{article['id']}#t", "text": article["title"], "start": 0, "end": 0, "source": "title"}]
    for i, s in enumerate(split_sentences(article["text"]), 1):
        spans.append({"sid": f"{article['id']}#{i}", "text": s.text, "start": s.start, "end": s.end, "source": "text"})
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=HERE / "ant.jsonl")
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--out", type=Path, default=HERE / "labelling")
    parser.add_argument("--round", type=int, choices=(1, 2, 3, 4, 5), default=1)
    args = parser.parse_args()
    from security_topics.text import split_sentences

    pool = [json.loads(line) for line in args.pool.read_text(encoding="utf-8").splitlines()]
    pool = [a for a in pool if 2 <= len(split_sentences(a["text"])) <= 30]
    scores = score_pool(pool, args.model, HERE / "ant_scores.jsonl")
    taken: set[str] = set()
    by_id = {a["id"]: a for a in pool}
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for period, members in (
        ("test_real", [a for a in pool if a["date"] >= HOLDOUT_FROM]),
        ("train", [a for a in pool if a["date"] < HOLDOUT_FROM]),
    ):
        for article_id, why in choose(members, scores, period, args.seed, taken):
            manifest.append({"id": article_id, "period": period, "why": why})
    rng = random.Random(args.seed)
    rng.shuffle(manifest)  # batches mix periods and reasons: a labeller cannot tell why an article is there
    first_batch = 1
    if args.round == 5:
        import csv

        from security_topics.text import dedup_key

        raw = HERE.parent / "raw"
        known = {
            dedup_key(r["text"])
            for f in ("real_sentences.csv", "sentences.csv")
            for r in csv.DictReader((raw / f).open())
        }
        found = []
        for article in pool:
            if _period(article) != "train":
                continue
            for i, sentence in enumerate(split_sentences(article["text"]), 1):
                key = dedup_key(sentence.text)
                topics = sum(bool(re.search(p, sentence.text)) for p in LIST_KEYWORDS.values())
                if topics >= 2 and key not in known and len(sentence.text.split()) >= 6:
                    known.add(key)
                    found.append({"sid": f"{article['id']}#{i}", "text": sentence.text})
        with (args.out / "sentences-08.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in found)
        print(f"round 5: {len(found)} list sentences")
        return
    if args.round == 4:
        import csv

        from security_topics import Predictor

        picked = {
            row["id"]
            for name in ("suggest-general", "suggest-sports")
            for row in csv.DictReader((args.out / name / "suggestions.csv").open(encoding="utf-8"))
        }
        items = []
        for line in (args.out / "supplement_pool.jsonl").read_text(encoding="utf-8").splitlines():
            article = json.loads(line)
            for i, s in enumerate(split_sentences(article["text"]), 1):
                if f"{article['id']}#{i}" not in picked and len(s.text.split()) >= 4:
                    items.append((f"{article['id']}#{i}", s.text))
        predictor = Predictor.load(args.model, precision="auto", num_threads=2)
        raw = predictor.raw_scores([t for _, t in items])
        thin = [predictor.labels.index(t) for t in ("sports_security", "narcotics")]
        chosen = [(sid, text) for (sid, text), row in zip(items, raw) if max(row[j] for j in thin) >= 0.3]
        print(f"round 4: {len(chosen)} of {len(items)} supplement-pool sentences score ≥ 0.3 for a thin topic")
        write_round4(args.out, chosen)
        return
    if args.round == 3:
        labelled = {json.loads(line)["id"] for line in (args.out / "manifest.jsonl").read_text().splitlines()}
        labelled |= {json.loads(line)["id"] for line in (args.out / "manifest-round2.jsonl").read_text().splitlines()}
        rest = [a for a in pool if _period(a) == "train" and a["id"] not in labelled]
        general = [
            a
            for a in rest
            if any(re.search(p, a["title"] + " " + a["text"]) for p in KEYWORDS.values())
            or max(scores[a["id"]]["best_sentence"].values()) >= 0.2
        ]
        sports = [
            a
            for a in general
            if re.search(NARROW["sports_security"], a["title"] + " " + a["text"])
            or scores[a["id"]]["best_sentence"]["sports_security"] >= 0.1
        ]
        for name, members in (("supplement_pool", general), ("supplement_pool_sports", sports)):
            with (args.out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
                for a in members:
                    f.write(
                        json.dumps(
                            {k: a[k] for k in ("id", "title", "text", "date", "outlet", "source")}, ensure_ascii=False
                        )
                        + "\n"
                    )
            print(f"{name}: {len(members)} of {len(rest)} unlabelled training-period articles")
        return
    if args.round == 2:
        first_batch = (len(manifest) + BATCH - 1) // BATCH + 1
        manifest = [
            {"id": i, "period": _period(by_id[i]), "why": why}
            for i, why in choose_round2(pool, scores, args.seed, taken)
        ]
        rng.shuffle(manifest)
    for b in range(0, len(manifest), BATCH):
        with (args.out / f"articles-{first_batch + b // BATCH:02d}.jsonl").open("w", encoding="utf-8") as f:
            for entry in manifest[b : b + BATCH]:
                a = by_id[entry["id"]]
                record = {"id": a["id"], "date": a["date"], "title": a["title"], "sentences": sentences_of(a)}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    name = "manifest.jsonl" if args.round == 1 else f"manifest-round{args.round}.jsonl"
    (args.out / name).write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in manifest))
    counts: dict[str, int] = {}
    for m in manifest:
        key = f"{m['period']}: {m['why'].split(':')[0]}"
        counts[key] = counts.get(key, 0) + 1
    print(json.dumps({"articles": len(manifest), **dict(sorted(counts.items()))}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
