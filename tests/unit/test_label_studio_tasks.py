"""The Label Studio round trip without a server: tasks out, an export in, duplicates refused."""

import csv
import json

import pytest

from security_topics.data import read_sentences
from security_topics.errors import DataError
from security_topics.label_studio import Task, import_labels, labelling_config, read_export, write_tasks
from security_topics.labels import LabelSet

LABELS = LabelSet.of(("counterterrorism", "narcotics", "aviation"))
TEXTS = ["تفكيك خلية إرهابية في بغداد", "ضبط شحنة كبتاجون في المطار", "افتتاح معرض للكتاب في الرباط"]


def _export(tasks, answers, who="ann@example.org"):
    """What Label Studio exports once each task has one annotation with these choices."""
    out = []
    for n, (task, choices) in enumerate(zip(tasks, answers), 1):
        out.append(
            {
                "id": n,
                "data": task["data"],
                "annotations": [
                    {
                        "id": 100 + n,
                        "completed_by": {"id": 1, "email": who},
                        "created_at": f"2026-12-02T10:0{n}:00Z",
                        "updated_at": f"2026-12-02T10:0{n}:30Z",
                        "was_cancelled": False,
                        "result": [
                            {"from_name": "topics", "to_name": "text", "type": "choices", "value": {"choices": choices}}
                        ],
                    }
                ],
                "predictions": task["predictions"],
            }
        )
    return out


def test_the_config_is_right_to_left_with_every_topic_and_none():
    config = labelling_config(LABELS, evidence=True)
    assert "direction: rtl" in config and 'choice="multiple"' in config
    assert all(f'<Choice value="{n}"/>' in config for n in (*LABELS.names, "none"))
    assert '<Labels name="evidence" toName="text">' in config


def test_tasks_carry_the_text_the_suggestion_and_evidence_with_its_text(tmp_path):
    text = "عنوان. تفكيك خلية إرهابية في بغداد."
    task = Task(
        "a1",
        text,
        title="خبر",
        topics=["counterterrorism"],
        score=0.42,
        spans=[{"start": 7, "end": 35, "text": text[7:35], "topic": "counterterrorism"}],
    )
    write_tasks(tmp_path / "tasks.json", [task], LABELS, model_version="e5_tfidf@models/default", evidence=True)
    [saved] = json.loads((tmp_path / "tasks.json").read_text())
    assert saved["data"] == {"id": "a1", "text": text, "title": "خبر"}
    prediction = saved["predictions"][0]
    assert prediction["model_version"] == "e5_tfidf@models/default" and prediction["score"] == 0.42
    choices, span = prediction["result"]
    assert choices["value"] == {"choices": ["counterterrorism"]}
    assert span["value"]["text"] == text[span["value"]["start"] : span["value"]["end"]]
    assert (tmp_path / "label_config.xml").is_file()
    assert Task("a2", "نص").to_json("m")["predictions"][0]["result"][0]["value"] == {"choices": ["none"]}


def test_an_export_reads_back_into_the_labels_given_with_who_and_when(tmp_path):
    tasks = [Task(f"s{i}", t).to_json("m") for i, t in enumerate(TEXTS)]
    answers = [["counterterrorism"], ["aviation", "narcotics"], ["none"]]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_export(tasks, answers), ensure_ascii=False))
    rows = read_export(path, LABELS)
    assert [(r.id, r.text, r.labels) for r in rows] == [
        ("s0", TEXTS[0], ("counterterrorism",)),
        ("s1", TEXTS[1], ("narcotics", "aviation")),  # in the label set's order
        ("s2", TEXTS[2], ()),
    ]
    assert rows[0].annotator == "ann@example.org" and rows[0].annotated_at == "2026-12-02T10:01:30Z"


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            [["counterterrorism"], ["piracy"], ["none"]],
            r"export.json:2: field 'topics': unknown topic\(s\) \['piracy'\]",
        ),
        ([["counterterrorism"], ["none", "aviation"], ["none"]], r"export.json:2: field 'topics': 'none' together"),
        ([["counterterrorism"], [], ["none"]], r"export.json:2: field 'topics': nothing chosen"),
    ],
)
def test_a_bad_answer_names_the_file_task_and_field(tmp_path, answers, message):
    tasks = [Task(f"s{i}", t).to_json("m") for i, t in enumerate(TEXTS)]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_export(tasks, answers), ensure_ascii=False))
    with pytest.raises(DataError, match=message):
        read_export(path, LABELS)


def test_a_task_without_an_answer_stops_the_import(tmp_path):
    exported = _export([Task("s0", TEXTS[0]).to_json("m")], [["aviation"]])
    exported[0]["annotations"][0]["was_cancelled"] = True
    (tmp_path / "export.json").write_text(json.dumps(exported))
    with pytest.raises(DataError, match=r"export.json:1: field 'annotations': task 1 \(id 's0'\) has no annotation"):
        read_export(tmp_path / "export.json", LABELS)


def test_a_filled_csv_export_reads_like_the_json_one(tmp_path):
    path = tmp_path / "export.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "topics", "annotator", "updated_at"])
        writer.writerow(["s0", TEXTS[0], '{"choices": ["counterterrorism"]}', "a@x", "t1"])
        writer.writerow(["s1", TEXTS[1], "aviation|narcotics", "b@x", "t2"])
        writer.writerow(["s2", TEXTS[2], "none", "b@x", "t3"])
    rows = read_export(path, LABELS)
    assert [r.labels for r in rows] == [("counterterrorism",), ("narcotics", "aviation"), ()]
    assert [r.line for r in rows] == [2, 3, 4] and rows[1].annotator == "b@x"


def test_import_appends_corpus_rows_and_refuses_duplicates(tmp_path):
    corpus = tmp_path / "sentences.csv"
    corpus.write_text(f"id,text,labels\nc1,{TEXTS[0]},counterterrorism\n", encoding="utf-8")
    tasks = [Task(f"s{i}", t).to_json("m") for i, t in enumerate(TEXTS)]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(_export(tasks, [["counterterrorism"], ["aviation"], ["none"]]), ensure_ascii=False))
    out = tmp_path / "new.csv"
    with pytest.raises(DataError, match=r"export.json:1: field 'text': already labelled at .*sentences.csv:2"):
        import_labels(export, out, LABELS, corpus=[corpus])
    assert not out.exists()  # nothing half-written
    summary = import_labels(export, out, LABELS, corpus=[corpus], skip_duplicates=True)
    assert summary == {"imported": 2, "skipped_duplicates": 1, "output": str(out)}
    rows = read_sentences(out, LABELS)
    assert [(e.text, e.labels) for e in rows] == [(TEXTS[1], ("aviation",)), (TEXTS[2], ())]
    assert rows[0].meta["annotator"] == "ann@example.org"
    again = import_labels(export, out, LABELS, corpus=[corpus], skip_duplicates=True)  # the output counts too
    assert again["imported"] == 0 and len(read_sentences(out, LABELS)) == 2
