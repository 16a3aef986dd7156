import json

import pytest

from security_topics.data import Example, read_articles, read_sentences, write_jsonl
from security_topics.errors import DataError
from security_topics.labels import LabelSet

LABELS = LabelSet.of(["counterterrorism", "narcotics", "cybersecurity", "aviation", "sports_security"])


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
        ('{"text": "نص", "labels": ' + "[" * 200_000 + "]" * 200_000 + "}", "json"),  # a RecursionError
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


def test_unlabelled_articles_need_only_text(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"text": "نص الخبر"}\n{"id": "x", "title": "عنوان", "text": "خبر آخر"}\n')
    articles = read_articles(path, None)
    assert [(a.id, a.title, a.text, a.labels) for a in articles] == [
        ("1", "", "نص الخبر", ()),
        ("x", "عنوان", "خبر آخر", ()),
    ]
    path = write(tmp_path, "b.jsonl", '{"title": "عنوان"}\n')
    with pytest.raises(DataError, match=r"b.jsonl:1: field 'text': missing field"):
        read_articles(path, None)


def _rows(n):
    return "".join(f"خبر رقم {i} عن ضبط شحنة,narcotics\n" for i in range(n))


def test_an_unclosed_quote_is_an_error_not_a_silent_merge(tmp_path):
    near_the_end = "text,labels\n" + _rows(40) + '"خبر بلا علامة إغلاق,narcotics\n' + _rows(5)
    with pytest.raises(DataError, match=r"bad.csv:42: field 'text': one row spans lines 42-47: an unclosed quote"):
        read_sentences(write(tmp_path, "bad.csv", near_the_end), LABELS)


def test_an_overlong_field_names_its_line(tmp_path):
    content = "text,labels\n" + _rows(3) + '"' + "ا" * 200_000 + '",narcotics\n'
    with pytest.raises(DataError, match=r"big.csv:5: field 'text': .*(limit|unclosed quote)"):
        read_sentences(write(tmp_path, "big.csv", content), LABELS)
    content = "text,labels\n" + "ب" * 6000 + ",narcotics\n"
    with pytest.raises(DataError, match=r"long.csv:2: field 'text': 6,000 characters, over the limit of 5,000"):
        read_sentences(write(tmp_path, "long.csv", content), LABELS)


def test_a_quoted_field_with_one_line_break_is_fine(tmp_path):
    content = 'text,labels\n"سطر أول\nوسطر ثان",narcotics\nنص,\n'
    assert [e.line for e in read_sentences(write(tmp_path, "ok.csv", content), LABELS)] == [2, 4]


def test_a_header_only_file_and_punctuation_only_texts_are_errors(tmp_path):
    with pytest.raises(DataError, match=r"empty.csv:2: field 'rows': no data rows"):
        read_sentences(write(tmp_path, "empty.csv", "text,labels\n"), LABELS)
    with pytest.raises(DataError, match=r"punct.csv:3: field 'text': has no letters or digits"):
        read_sentences(write(tmp_path, "punct.csv", "text,labels\nنص,narcotics\n...!!؟,narcotics\n"), LABELS)


def test_a_gzip_file_is_one_error_naming_it_not_one_per_line(tmp_path):
    import gzip

    path = write(tmp_path, "sentences.csv", gzip.compress(("text,labels\n" + "نص,narcotics\n" * 200).encode()))
    with pytest.raises(DataError, match=r"sentences.csv:0: field 'encoding': the file is gzip-compressed"):
        read_sentences(path, LABELS)
