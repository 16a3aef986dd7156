import json
from collections import Counter

import pytest

from security_topics.data import (
    DataError,
    Example,
    find_duplicates,
    read_articles,
    read_sentences,
    split_examples,
    write_jsonl,
)
from security_topics.labels import LabelSet
from security_topics.text import dedup_key

LABELS = LabelSet.of(["counterterrorism", "narcotics", "cybersecurity", "aviation", "sports_security"])
RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_csv_reads_labels_and_keeps_extra_columns_as_metadata(tmp_path):
    path = write(
        tmp_path,
        "s.csv",
        "text,labels,subtheme\n"
        "تفكيك خلية إرهابية,counterterrorism,ct_cells\n"
        '"ضبط كبتاجون في المطار، وتوقيف مهرب",narcotics|aviation,nar\n'
        "فاز الفريق بالمباراة,,neg\n",
    )
    examples = read_sentences(path, LABELS)
    assert [e.labels for e in examples] == [("counterterrorism",), ("narcotics", "aviation"), ()]
    assert examples[1].text == "ضبط كبتاجون في المطار، وتوقيف مهرب"
    assert examples[0].meta == {"subtheme": "ct_cells"}
    assert [e.line for e in examples] == [2, 3, 4]


def test_jsonl_round_trip_preserves_rows(tmp_path):
    examples = [
        Example("هجوم إلكتروني على مطار", ("cybersecurity", "aviation"), id="a", meta={"source": "x"}),
        Example("خبر اقتصادي", (), id="b", meta={"source": "y"}),
    ]
    write_jsonl(tmp_path / "out.jsonl", examples)
    back = read_sentences(tmp_path / "out.jsonl", LABELS)
    assert [(e.id, e.text, e.labels, e.meta) for e in back] == [(e.id, e.text, e.labels, e.meta) for e in examples]


@pytest.mark.parametrize(
    ("content", "line", "field"),
    [
        ("text,topic\nنص,narcotics\n", 1, "labels"),
        ("labels\nnarcotics\n", 1, "text"),
        ("text,labels\nنص صحيح,narcotics\n   ,narcotics\n", 3, "text"),
        ("text,labels\nنص,narcotics\nنص آخر,terrorism\n", 3, "labels"),
        ('text,labels\n"سطر\nمن سطرين",narcotics\nنص,narcotic\n', 4, "labels"),
        ("text,labels\nنص,narcotics,extra\n", 2, "row"),
    ],
)
def test_csv_errors_name_file_line_and_field(tmp_path, content, line, field):
    path = write(tmp_path, "bad.csv", content)
    with pytest.raises(DataError) as err:
        read_sentences(path, LABELS)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), line, field)
    assert str(err.value).startswith(f"{path}:{line}: field '{field}'")


def test_undecodable_bytes_name_the_line(tmp_path):
    path = write(tmp_path, "bad.csv", "text,labels\nنص,narcotics\n".encode() + b"\xff\xfe bad,\n")
    with pytest.raises(DataError, match=r"bad.csv:3: field 'encoding'"):
        read_sentences(path, LABELS)


@pytest.mark.parametrize(
    ("line2", "field"),
    [
        ('{"text": "نص", "labels": "narcotics"}', "labels"),
        ('{"text": "", "labels": []}', "text"),
        ('{"labels": []}', "text"),
        ('{"text": "نص", "labels": [}', "json"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path, line2, field):
    path = write(tmp_path, "bad.jsonl", '{"text": "نص سليم", "labels": ["narcotics"]}\n' + line2 + "\n")
    with pytest.raises(DataError) as err:
        read_sentences(path, LABELS)
    assert (err.value.line, err.value.field) == (2, field)


def test_articles_validate_ids_and_labels(tmp_path):
    good = {"id": "a1", "title": "عنوان", "text": "نص المقال.", "labels": ["aviation"]}
    path = write(tmp_path, "a.jsonl", json.dumps(good, ensure_ascii=False) + "\n")
    assert read_articles(path, LABELS)[0].labels == ("aviation",)
    path = write(tmp_path, "dup.jsonl", (json.dumps(good, ensure_ascii=False) + "\n") * 2)
    with pytest.raises(DataError, match=r"dup.jsonl:2: field 'id': duplicate id 'a1' \(first on line 1\)"):
        read_articles(path, LABELS)
    bad = {**good, "labels": ["weather"]}
    path = write(tmp_path, "lab.jsonl", json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"lab.jsonl:1: field 'labels': unknown label 'weather'"):
        read_articles(path, LABELS)


def test_custom_label_set_is_accepted_without_code_changes(tmp_path):
    labels = LabelSet.of(["border_security"])
    path = write(tmp_path, "s.csv", "text,labels\nضبط متسللين على الحدود,border_security\n")
    assert read_sentences(path, labels)[0].labels == ("border_security",)


def _corpus(n=400):
    topics = list(LABELS.names)
    examples = []
    for i in range(n):
        labels = () if i % 3 == 0 else (topics[i % 5],) if i % 7 else (topics[i % 5], topics[(i + 1) % 5])
        examples.append(Example(f"جملة رقم {i} عن موضوع", labels, id=str(i), line=i + 2))
    return examples


def test_split_is_deterministic_and_seed_dependent():
    a = split_examples(_corpus(), RATIOS, seed=7)
    b = split_examples(_corpus(), RATIOS, seed=7)
    c = split_examples(_corpus(), RATIOS, seed=8)
    assert {k: [e.id for e in v] for k, v in a.items()} == {k: [e.id for e in v] for k, v in b.items()}
    assert [e.id for e in a["test"]] != [e.id for e in c["test"]]
    assert sum(len(v) for v in a.values()) == 400
    assert 30 <= len(a["test"]) <= 50 and 30 <= len(a["validation"]) <= 50


def test_split_is_stratified_by_label():
    splits = split_examples(_corpus(), RATIOS, seed=1)
    for name in LABELS.names:
        total = sum(name in e.labels for v in splits.values() for e in v)
        in_test = sum(name in e.labels for e in splits["test"])
        assert abs(in_test - total * 0.1) <= 3, name


def test_duplicates_are_found_and_never_cross_splits():
    examples = _corpus(200)
    copies = [
        Example(e.text.replace("جملة", "جملةٌ") + ".", e.labels, id=e.id + "dup", line=1000 + i)
        for i, e in enumerate(examples[:60])
    ]
    groups = find_duplicates(examples + copies)
    assert len(groups) == 60
    splits = split_examples(examples + copies, RATIOS, seed=3)
    where = {}
    for split, members in splits.items():
        for e in members:
            where.setdefault(dedup_key(e.text), set()).add(split)
    assert all(len(s) == 1 for s in where.values())
    assert Counter(len(s) for s in where.values()) == Counter({1: 200})


def test_split_ratios_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        split_examples(_corpus(10), {"train": 0.8, "validation": 0.1, "test": 0.2}, seed=1)


def test_csv_line_numbers_count_blank_and_multi_line_rows(tmp_path):
    content = 'text,labels\nنص,narcotics\n\n"سطر\nثان",aviation\nنص آخر,weather\n'
    path = write(tmp_path, "s.csv", content)
    with pytest.raises(DataError) as err:
        read_sentences(path, LABELS)
    assert (err.value.line, err.value.field) == (6, "labels")


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    example = Example("قال\u2028المتحدث\u0085إن العملية انتهت", ("counterterrorism",), id="x")
    write_jsonl(tmp_path / "s.jsonl", [example, Example("خبر", (), id="y")])
    back = read_sentences(tmp_path / "s.jsonl", LABELS)
    assert [(e.text, e.line) for e in back] == [(example.text, 1), ("خبر", 2)]
