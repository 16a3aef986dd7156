"""Duplicate groups and the seeded, iteratively stratified splits of sentences and articles."""

from collections import Counter

import pytest

from security_topics.corpus import read_article_sides
from security_topics.data import Article, Example
from security_topics.errors import ConfigError, DataError
from security_topics.labels import LabelSet
from security_topics.splits import (
    REAL,
    batch_order,
    find_duplicates,
    in_articles,
    split_articles,
    split_examples,
    split_real,
)
from security_topics.text import dedup_key

LABELS = LabelSet.of(["counterterrorism", "narcotics", "cybersecurity", "aviation", "sports_security"])
RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _corpus(n=400):
    topics = list(LABELS.names)
    examples = []
    for i in range(n):
        labels = () if i % 3 == 0 else (topics[i % 5],) if i % 7 else (topics[i % 5], topics[(i + 1) % 5])
        examples.append(Example(f"جملة رقم {i} عن موضوع", labels, id=str(i), line=i + 2))
    return examples


def test_split_is_deterministic_and_seed_dependent():
    a = split_examples(_corpus(), LABELS, RATIOS, seed=7)
    b = split_examples(_corpus(), LABELS, RATIOS, seed=7)
    c = split_examples(_corpus(), LABELS, RATIOS, seed=8)
    assert {k: [e.id for e in v] for k, v in a.items()} == {k: [e.id for e in v] for k, v in b.items()}
    assert [e.id for e in a["test"]] != [e.id for e in c["test"]]
    assert sum(len(v) for v in a.values()) == 400
    assert 30 <= len(a["test"]) <= 50 and 30 <= len(a["validation"]) <= 50


def test_split_is_stratified_by_every_label_and_none():
    splits = split_examples(_corpus(), LABELS, RATIOS, seed=1)
    for name in LABELS.names:
        total = sum(name in e.labels for v in splits.values() for e in v)
        in_test = sum(name in e.labels for e in splits["test"])
        assert abs(in_test - total * 0.1) <= 2, name
    none_total = sum(not e.labels for v in splits.values() for e in v)
    assert abs(sum(not e.labels for e in splits["test"]) - none_total * 0.1) <= 2


def test_duplicates_are_found_and_never_cross_splits():
    examples = _corpus(200)
    copies = [
        Example(e.text.replace("جملة", "جملةٌ") + ".", e.labels, id=e.id + "dup", line=1000 + i)
        for i, e in enumerate(examples[:60])
    ]
    groups = find_duplicates(examples + copies)
    assert len(groups) == 60
    splits = split_examples(examples + copies, LABELS, RATIOS, seed=3)
    where = {}
    for split, members in splits.items():
        for e in members:
            where.setdefault(dedup_key(e.text), set()).add(split)
    assert all(len(s) == 1 for s in where.values())
    assert Counter(len(s) for s in where.values()) == Counter({1: 200})


def test_split_ratios_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        split_examples(_corpus(10), LABELS, {"train": 0.8, "validation": 0.1, "test": 0.2}, seed=1)


def test_rare_multi_label_combinations_reach_the_held_out_splits():
    examples = _corpus(400)
    rare = [Example(f"جملة نادرة {i}", ("narcotics", "aviation"), id=f"r{i}", line=900 + i) for i in range(10)]
    splits = split_examples(examples + rare, LABELS, RATIOS, seed=5)
    placed = {name: sum(e.id.startswith("r") for e in members) for name, members in splits.items()}
    assert placed["train"] >= 6 and placed["test"] >= 1 and placed["validation"] >= 1, placed


def _articles(n=60):
    topics = list(LABELS.names)
    return [Article(f"a{i}", "", f"خبر رقم {i}.", () if i % 4 == 0 else (topics[i % 5],), line=i + 1) for i in range(n)]


def test_articles_split_into_validation_and_test_by_topic():
    splits = split_articles(_articles(), LABELS, validation=0.5, seed=3)
    assert len(splits["validation"]) == len(splits["test"]) == 30
    assert {a.id for a in splits["validation"]}.isdisjoint(a.id for a in splits["test"])
    for name in LABELS.names:
        assert (
            abs(sum(name in a.labels for a in splits["validation"]) - sum(name in a.labels for a in splits["test"]))
            <= 1
        )
    assert split_articles(_articles(), LABELS, 0.5, seed=3) == splits
    assert split_articles([], LABELS, 0.5, seed=3) == {"validation": [], "test": []}


def test_sentences_of_articles_are_found_in_the_corpus():
    article = Article("a", "", "ضبط شحنة كبتاجون في الميناء. وقال المتحدث إن التحقيق مستمر.", ("narcotics",))
    examples = [
        Example("ضُبط شحنة كبتاجون في الميناء", ("narcotics",), id="x"),  # equal after normalisation
        Example("ضبط شحنة حشيش في الميناء", ("narcotics",), id="y"),
        Example("وقال المتحدث إن التحقيق مستمر", (), id="z"),
    ]
    assert [e.id for e in in_articles(examples, [article])] == ["x", "z"]


def test_prepare_stops_when_a_topic_has_no_training_example(tmp_path):
    from security_topics.corpus import CorpusSpec, prepare
    from security_topics.errors import DataError

    rows = "".join(f"خبر رقم {i} عن ضبط شحنة مخدرات,narcotics\n" for i in range(30))
    (tmp_path / "s.csv").write_text("text,labels\n" + rows, encoding="utf-8")
    spec = CorpusSpec(("narcotics", "aviation"), str(tmp_path / "s.csv"), None, str(tmp_path / "out"), RATIOS, 1)
    with pytest.raises(DataError, match=r"s.csv:0: field 'labels': topic\(s\) \['aviation'\] have no example"):
        prepare(spec)


def test_a_new_batch_of_rows_never_moves_an_earlier_row():
    first = _corpus(300)
    batch = [
        Example(f"جملة جديدة {i}", ("aviation",), id=f"n{i}", line=1000 + i, meta={"batch": "2026-12"})
        for i in range(40)
    ]
    before = split_examples(first, LABELS, RATIOS, seed=4)
    after = split_examples(first + batch, LABELS, RATIOS, seed=4)
    for name in before:
        assert {e.id for e in before[name]} == {e.id for e in after[name] if not e.id.startswith("n")}
    assert sum(e.id.startswith("n") for e in after["test"]) >= 3  # the batch is split too


def _real():
    articles, sentences = [], []
    for i in range(40):
        date = f"2017-0{1 + i % 6}-15"  # January to June: April on is held out
        labels = () if i % 3 else (LABELS.names[i % 5],)
        articles.append(Article(f"ant-{i}", "", "نص.", labels, meta={"date": date}))
        for k in range(3):
            sentences.append(
                Example(
                    f"جملة {k} من الخبر {i}",
                    labels if k == 0 else (),
                    id=f"ant-{i}#{k}",
                    meta={"pool_id": f"ant-{i}", "date": date},
                )
            )
    for i in range(30):  # sentences of articles not labelled as articles
        sentences.append(
            Example(f"جملة منفردة {i}", (), id=f"x-{i}#1", meta={"pool_id": f"x-{i}", "date": "2016-05-01"})
        )
    return sentences, articles


def test_real_news_splits_by_time_and_keeps_each_article_whole():
    sentences, articles = _real()
    parts = split_real(sentences, articles, LABELS, "2017-04-01", rule_share=0.5, validation_share=0.2, seed=1)
    assert {a.meta["date"][:7] for a in parts.articles[REAL]} == {"2017-04", "2017-05", "2017-06"}
    assert all(a.meta["date"] < "2017-04-01" for a in parts.articles["validation"])
    assert 8 <= len(parts.articles["validation"]) <= 12  # about half of the 20 earlier ones (stratified)
    split_of = {e.id: name for name, members in parts.sentences.items() for e in members}
    assert len(split_of) == len(sentences)
    for article in articles:  # every sentence of an article goes where the article goes
        sides = {split_of[f"{article.id}#{k}"] for k in range(3)}
        expected = (
            {REAL}
            if article in parts.articles[REAL]
            else {"validation"}
            if article in parts.articles["validation"]
            else {"train"}
        )
        assert sides == expected, article.id
    loose = [split_of[f"x-{i}#1"] for i in range(30)]
    assert loose.count("validation") == 6 and loose.count("train") == 24


def test_a_new_batch_of_real_sentences_never_moves_an_earlier_one():
    sentences, articles = _real()
    split = dict(labels=LABELS, holdout_from="2017-04-01", rule_share=0.5, validation_share=0.2, seed=1)
    before = split_real(sentences, articles, **split)
    batch = [
        Example(f"جملة جديدة {i}", (), id=f"y-{i}#1", meta={"pool_id": f"y-{i}", "date": "2016-06-01", "batch": "r6"})
        for i in range(20)
    ]
    # a new sentence of an article that already has one keeps to that article's side
    batch.append(Example("جملة أخرى", (), id="x-3#2", meta={"pool_id": "x-3", "date": "2016-05-01", "batch": "r6"}))
    after = split_real([*sentences, *batch], articles, **split)
    side = {e.id: name for name, members in after.sentences.items() for e in members}
    for name, members in before.sentences.items():
        assert {side[e.id] for e in members} <= {name}
    assert side["x-3#2"] == side["x-3#1"]
    assert [side[f"y-{i}#1"] for i in range(20)].count("validation") == 4  # the batch is split too


def test_batches_are_placed_in_numeric_order_so_r10_never_moves_r9():
    sentences, articles = _real()
    split = dict(labels=LABELS, holdout_from="2017-04-01", rule_share=0.5, validation_share=0.2, seed=1)

    def batch(name: str, prefix: str) -> list[Example]:
        return [
            Example(
                f"جملة {prefix} {i}",
                (),
                id=f"{prefix}-{i}#1",
                meta={"pool_id": f"{prefix}-{i}", "date": "2016-06-01", "batch": name},
            )
            for i in range(20)
        ]

    r9 = batch("r9", "y")
    before = split_real([*sentences, *r9], articles, **split)
    # round 10 holds a second sentence of a round-9 article: as a string "r10" sorts before "r9"
    r10 = [
        *batch("r10", "z"),
        Example("جملة ثانية", (), id="y-3#2", meta={"pool_id": "y-3", "date": "2016-06-01", "batch": "r10"}),
    ]
    after = split_real([*sentences, *r9, *r10], articles, **split)
    side = {e.id: name for name, members in after.sentences.items() for e in members}
    for name, members in before.sentences.items():
        assert {side[e.id] for e in members} <= {name}
    assert side["y-3#2"] == side["y-3#1"]
    assert batch_order("r9") < batch_order("r10") and batch_order("") < batch_order("r6")


def test_prepared_splits_are_not_prepared_again_when_nothing_changed(tmp_path, caplog):
    from helpers import FIXTURES

    from security_topics.corpus import CorpusSpec, RealSpec, load_splits

    spec = CorpusSpec(
        labels=LABELS.names,
        sentences=str(FIXTURES / "sentences.csv"),
        articles=str(FIXTURES / "articles.jsonl"),
        processed_dir=str(tmp_path),
        split={"train": 0.7, "validation": 0.15, "test": 0.15},
        split_seed=1,
        real=RealSpec(str(FIXTURES / "real_sentences.csv"), str(FIXTURES / "real_articles.jsonl"), "2017-04-01"),
    )
    first = load_splits(spec)
    caplog.clear()
    with caplog.at_level("INFO", logger="security_topics.corpus"):
        second = load_splits(spec)
    assert "preparing" not in caplog.text and len(second.sentences[REAL]) == len(first.sentences[REAL]) > 0


def test_real_training_rows_are_repeated_as_configured_and_written_rows_once():
    from security_topics.corpus import CorpusSpec, RealSpec, training_sentences

    written = Example("جملة مكتوبة", ("narcotics",), id="s1")
    real = Example("جملة من الأخبار", (), id="ant-1#2", meta={"source": "ant"})
    base = {"sentences": "a.csv", "articles": "b.jsonl", "holdout_from": "2017-04-01"}

    def spec(**real_values):
        split = {"train": 0.8, "validation": 0.1, "test": 0.1}
        values = {"labels": LABELS.names, "sentences": "s.csv", "processed_dir": ".", "split": split, "split_seed": 1}
        return CorpusSpec.from_mapping({**values, "real": {**base, **real_values}})

    assert training_sentences(spec(), [written, real]) == [written, real]
    assert [e.id for e in training_sentences(spec(train_repeat=3), [written, real])] == ["s1", *["ant-1#2"] * 3]
    assert RealSpec.from_mapping(base).train_repeat == 1
    for bad in (0, 1.5, "2", True):
        with pytest.raises(ConfigError, match=r"data.real.train_repeat must be a whole number of at least 1, got"):
            spec(train_repeat=bad)


def test_pinned_sides_keep_every_article_where_it_was_when_one_is_relabelled():
    sentences, articles = _real()
    split = dict(labels=LABELS, holdout_from="2017-04-01", rule_share=0.5, validation_share=0.2, seed=1)
    before = split_real(sentences, articles, **split)
    assert set(before.sides) == {a.id for a in articles if a.meta["date"] < "2017-04-01"}
    unlabelled = next(a for a in articles if not a.labels and a.meta["date"] < "2017-04-01")
    relabelled = [
        Article(a.id, a.title, a.text, ("narcotics", "aviation"), meta=a.meta) if a is unlabelled else a
        for a in articles
    ]
    moved = split_real(sentences, relabelled, **split).sides
    assert moved != before.sides  # the stratified choice follows the labels: others move
    pinned = split_real(sentences, relabelled, **split, pinned=before.sides)
    assert pinned.sides == before.sides
    assert pinned.sentences == before.sentences
    new = [Article(f"ant-new-{i}", "", "نص.", ("cybersecurity",), meta={"date": "2016-02-01"}) for i in range(4)]
    grown = split_real(sentences, [*relabelled, *new], **split, pinned=before.sides)
    assert {k: v for k, v in grown.sides.items() if not k.startswith("ant-new")} == before.sides
    assert sorted(grown.sides[a.id] for a in new) == ["train", "train", "validation", "validation"]  # rule_share


@pytest.mark.parametrize(
    ("content", "line", "field", "message"),
    [
        ("article,side\nant-0,train\n", 1, "header", "expected the columns id,split"),
        ("id,split\nant-0,train\nant-404,train\n", 3, "id", "'ant-404' is no labelled real article"),
        ("id,split\nant-0,train\nant-0,validation\n", 3, "id", "listed twice"),
        ("id,split\nant-0,test\n", 2, "split", "must be one of .*got 'test'"),
    ],
)
def test_a_bad_sides_file_names_its_line_and_field(tmp_path, content, line, field, message):
    path = tmp_path / "sides.csv"
    path.write_text(content, encoding="utf-8")
    _, articles = _real()
    with pytest.raises(DataError, match=message) as error:
        read_article_sides(path, articles)
    assert (error.value.line, error.value.field) == (line, field)
