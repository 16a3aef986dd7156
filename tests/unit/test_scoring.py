"""Batch scoring (`security-topics score`, local engine): the Predictor's labels, one row per
article, bad rows in `_errors/` with their line, and a resume that neither re-scores nor loses."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FIXTURES, fit_tfidf

from security_topics import scoring
from security_topics.cli import main
from security_topics.errors import ConfigError
from security_topics.predictor import Predictor
from security_topics.scoring import read_errors, read_input, read_jsonl, read_output, score_local


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return str(fit_tfidf(tmp_path_factory.mktemp("model") / "tfidf"))


@pytest.fixture(scope="module")
def articles() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "articles.jsonl").read_text().splitlines() if line.strip()]


def _jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)) + "\n" for x in lines))
    return path


def test_local_engine_gives_the_predictors_labels_scores_and_evidence(model_dir, articles, tmp_path):
    summary = score_local(model_dir, FIXTURES / "articles.jsonl", tmp_path / "out.parquet", batch_size=7)
    rows = read_output(tmp_path / "out.parquet")
    expected = Predictor.load(model_dir).predict_articles(
        [a["text"] for a in articles], titles=[a["title"] for a in articles]
    )
    assert (summary.scored, summary.errors, summary.parts) == (len(articles), 0, 4)
    assert [r["id"] for r in rows] == [a["id"] for a in articles]
    for row, result in zip(rows, expected):
        assert row["topics"] == list(result.labels)
        assert row["scores"] == result.scores
        assert [(e["topic"], e["start"], e["end"]) for e in row["evidence"]] == [
            (t.topic, e.start, e.end) for t in result.topics for e in t.evidence
        ]
        assert row["model"]["uri"] == model_dir and row["model"]["checksum"].startswith("sha256:")
    assert (tmp_path / "out.parquet" / "_SUCCESS").exists()


def test_jsonl_and_parquet_outputs_hold_the_same_rows(model_dir, tmp_path):
    score_local(model_dir, FIXTURES / "articles.jsonl", tmp_path / "out.parquet", batch_size=10)
    score_local(model_dir, FIXTURES / "articles.jsonl", tmp_path / "out.jsonl", batch_size=10)
    assert sorted(p.name for p in (tmp_path / "out.jsonl").glob("part-*")) == [f"part-0000{i}.jsonl" for i in range(3)]
    assert read_output(tmp_path / "out.jsonl") == read_output(tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet")  # a Parquet dataset: `_errors/` and `_SUCCESS` are skipped
    assert table.num_rows == 26 and table.schema.field("scores").type == pa.map_(pa.string(), pa.float64())


def test_bad_rows_land_in_errors_with_their_line_and_every_good_row_is_scored(model_dir, articles, tmp_path):
    a = articles
    source = _jsonl(
        tmp_path / "in.jsonl",
        [a[0], "{not json", {"id": "t1", "text": 42}, a[1], "", {"text": "بلا معرف"}, "[1, 2]",
         {"id": "x", "title": "بلا نص"}, {**a[2], "id": a[0]["id"]}, a[3], {"id": "t2", "text": "نص", "title": 3}],
    )  # fmt: skip
    summary = score_local(model_dir, source, tmp_path / "out.parquet", batch_size=2)
    assert [r["id"] for r in read_output(tmp_path / "out.parquet")] == [a[0]["id"], a[1]["id"], a[3]["id"]]
    errors = read_errors(tmp_path / "out.parquet")
    assert [(e["line"], e["field"]) for e in errors] == [
        (2, "json"), (3, "text"), (6, "id"), (7, "json"), (8, "text"), (9, "id"), (11, "title")
    ]  # fmt: skip
    assert all(e["source"] == str(source) for e in errors) and summary.errors == 7
    assert errors[5]["reason"] == f"duplicate id (first at {source}:1)"


def test_parquet_input_reports_row_numbers_across_row_groups(model_dir, articles, tmp_path):
    rows = [{"id": a["id"], "text": a["text"], "title": a["title"]} for a in articles[:6]]
    rows[4]["text"] = None
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=2)
    score_local(model_dir, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert [r["id"] for r in read_output(tmp_path / "out.parquet")] == [r["id"] for r in rows if r["text"]]
    assert [(e["line"], e["field"], e["id"]) for e in read_errors(tmp_path / "out.parquet")] == [
        (5, "text", rows[4]["id"])
    ]


def test_a_folder_of_jsonl_and_parquet_files_is_read_in_order(articles, tmp_path):
    (tmp_path / "in" / "b").mkdir(parents=True)
    _jsonl(tmp_path / "in" / "a.jsonl", articles[:3])
    pq.write_table(pa.Table.from_pylist(articles[3:5]), tmp_path / "in" / "b" / "c.parquet")
    _jsonl(tmp_path / "in" / "_skipped.jsonl", ["not read"])
    (tmp_path / "in" / "notes.txt").write_text("not read")
    assert [r.id for r in read_input(tmp_path / "in")] == [a["id"] for a in articles[:5]]


def test_a_resumed_run_scores_only_what_a_killed_run_did_not_write(model_dir, articles, tmp_path, monkeypatch):
    source = _jsonl(tmp_path / "in.jsonl", [*articles[:10], "{bad", *articles[10:]])
    output = tmp_path / "out.parquet"
    write = scoring.PartWriter.write
    calls = []

    def killed_after_two_parts(self, rows, errors):
        if len(calls) == 2:
            (self.output / ".tmp-part-00002.parquet").write_bytes(b"half a part")  # what a kill leaves
            raise KeyboardInterrupt
        calls.append([r["id"] for r in rows])
        write(self, rows, errors)

    monkeypatch.setattr(scoring.PartWriter, "write", killed_after_two_parts)
    with pytest.raises(KeyboardInterrupt):
        score_local(model_dir, source, output, batch_size=4)
    monkeypatch.setattr(scoring.PartWriter, "write", write)
    written = {i for ids in calls for i in ids}
    assert len(written) == 8 and not (output / "_SUCCESS").exists()

    scored = []
    score_isolated = scoring.score_isolated
    monkeypatch.setattr(
        scoring, "score_isolated", lambda p, rows, m: scored.extend(r.id for r in rows) or score_isolated(p, rows, m)
    )
    summary = score_local(model_dir, source, output, batch_size=4)
    assert len(scored) == len(articles) - 8 and not written & set(scored)  # the resumed run scores the rest only
    assert summary.skipped == 8 and summary.scored == len(articles) - 8
    ids = [r["id"] for r in read_output(output)]
    assert sorted(ids) == sorted(a["id"] for a in articles)  # none missing, none twice
    assert len(read_errors(output)) == 1 and not list(output.glob(".tmp-*"))

    again = score_local(model_dir, source, output, batch_size=4)  # a finished output: nothing to do
    assert (again.scored, again.skipped, again.errors) == (0, len(articles), 0)
    assert len(read_output(output)) == len(articles) and len(read_errors(output)) == 1


def test_a_grown_input_scores_only_the_new_articles(model_dir, articles, tmp_path):
    output = tmp_path / "out.jsonl"
    score_local(model_dir, _jsonl(tmp_path / "in.jsonl", articles[:5]), output)
    summary = score_local(model_dir, _jsonl(tmp_path / "in.jsonl", articles[:8]), output)
    assert (summary.scored, summary.skipped) == (3, 5)
    assert [r["id"] for r in read_output(output)] == [a["id"] for a in articles[:8]]


def test_jsonl_slices_read_like_the_whole_file(articles, tmp_path):
    from security_topics.scoring_spark import plan_units

    source = _jsonl(tmp_path / "in.jsonl", [*articles[:5], "", "{bad", *articles[5:9]])
    units = plan_units([source], slice_bytes=3000)
    assert len(units) > 3 and units[0]["start"] == 0 and units[-1]["end"] == source.stat().st_size
    sliced = [r for u in units for r in read_jsonl(source, u["start"], u["end"], u["first_line"])]
    assert sliced == list(read_jsonl(source))


def test_the_command_scores_and_reports_bad_input_in_one_line(model_dir, articles, tmp_path, capsys):
    source = _jsonl(tmp_path / "in.jsonl", [*articles[:3], "{bad"])
    main(["score", "--model", model_dir, str(source), str(tmp_path / "out.jsonl"), "--batch-size", "2"])
    captured = capsys.readouterr()
    assert f"scored 3 articles into {tmp_path / 'out.jsonl'}" in captured.out
    assert "1 input rows could not be scored" in captured.err
    with pytest.raises(SystemExit, match="no such file or folder"):
        main(["score", "--model", model_dir, str(tmp_path / "nowhere"), str(tmp_path / "o")])
    (tmp_path / "in.csv").write_text("id,text\n")
    with pytest.raises(SystemExit, match="use .jsonl or .parquet"):
        main(["score", "--model", model_dir, str(tmp_path / "in.csv"), str(tmp_path / "o")])


def test_the_spark_engine_without_pyspark_says_what_to_install(model_dir, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(SystemExit, match=r"security-topics\[spark\]"):
        main(
            ["score", "--engine", "spark", "--model", model_dir, str(FIXTURES / "articles.jsonl"), str(tmp_path / "o")]
        )


def test_the_spark_engine_refuses_to_mix_into_an_existing_output(model_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part-00000.parquet").write_bytes(b"")
    with pytest.raises(SystemExit, match="already exists"):
        main(
            [
                "score",
                "--engine",
                "spark",
                "--model",
                model_dir,
                str(FIXTURES / "articles.jsonl"),
                str(tmp_path / "out"),
            ]
        )


def test_a_resume_with_another_model_is_refused(model_dir, articles, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    card = json.loads((other / "security_topics.json").read_text())
    (other / "security_topics.json").write_text(json.dumps({**card, "thresholds": [0.4] * len(card["labels"])}))
    source = _jsonl(tmp_path / "in.jsonl", articles[:3])
    score_local(model_dir, source, tmp_path / "out.parquet")
    with pytest.raises(ConfigError, match="scored by another model"):
        score_local(other, source, tmp_path / "out.parquet")


def test_a_lone_surrogate_is_an_error_row_and_the_rest_are_scored(model_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [
        '{"id": "a", "text": "ضبط كبتاجون"}',
        '{"id": "b", "text": "نص \\ud83d مكسور"}',
        '{"id": "c", "text": "خلية"}',
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = score_local(model_dir, source, tmp_path / "out")
    assert summary.scored == 2 and summary.errors == 1
    (error,) = read_errors(tmp_path / "out")
    assert (error["line"], error["field"], error["id"]) == (2, "text", "b") and "surrogate" in error["reason"]
    assert [r["id"] for r in read_output(tmp_path / "out")] == ["a", "c"]


def test_a_line_nested_too_deeply_for_the_json_parser_is_an_error_row(model_dir, tmp_path):
    deep = "[" * 200_000 + "]" * 200_000  # Python's parser gives up with a RecursionError, not a JSONDecodeError
    lines = [{"id": "a", "text": "ضبط كبتاجون"}, deep, '{"id": "c", "text": ' + deep + "}"]
    source = _jsonl(tmp_path / "in.jsonl", lines)
    summary = score_local(model_dir, source, tmp_path / "out")
    assert summary.scored == 1 and summary.errors == 2
    assert [(e["line"], e["field"], e["reason"]) for e in read_errors(tmp_path / "out")] == [
        (2, "json", "invalid JSON: nested too deeply"),
        (3, "json", "invalid JSON: nested too deeply"),
    ]


def test_an_article_over_the_size_cap_is_an_error_row(model_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    rows = [{"id": "short", "text": "ضبط كبتاجون"}, {"id": "long", "text": "كلمة " * 100}]
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    summary = score_local(model_dir, source, tmp_path / "out", max_chars=100)
    assert summary.scored == 1
    (error,) = read_errors(tmp_path / "out")
    assert (
        error["id"] == "long" and error["field"] == "text" and "over the maximum article size of 100" in error["reason"]
    )


def test_a_gzip_file_named_jsonl_is_one_error_naming_the_file(tmp_path):
    import gzip

    path = tmp_path / "archive.jsonl"
    path.write_bytes(gzip.compress(b'{"id": "a", "text": "x"}\n'))
    with pytest.raises(scoring.DataError, match=r"archive.jsonl.*gzip-compressed"):
        list(read_jsonl(path))


def test_one_job_writes_an_output_at_a_time_and_never_inside_its_input(model_dir, articles, tmp_path):
    first = scoring.PartWriter(tmp_path / "out")
    with pytest.raises(ConfigError, match="another score job is writing into it"):
        scoring.PartWriter(tmp_path / "out")
    first.finish()
    scoring.PartWriter(tmp_path / "out").finish()  # free again once the first job is done
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"id": "a", "text": "نص"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="lies inside INPUT"):
        score_local(model_dir, folder, folder / "scored")
    assert not (folder / "scored").exists()


def test_predict_output_is_replaced_only_when_whole(model_dir, tmp_path, monkeypatch):
    import errno

    import security_topics.cli as cli

    source = _jsonl(tmp_path / "in.jsonl", [{"id": str(i), "text": "ضبط كبتاجون في الميناء."} for i in range(3)])
    out = tmp_path / "labels.jsonl"
    out.write_text("the earlier results\n")
    real_dumps, written = json.dumps, []

    def dumps_until_the_disk_is_full(obj, **kwargs):
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(obj)
        return real_dumps(obj, **kwargs)

    monkeypatch.setattr(cli.json, "dumps", dumps_until_the_disk_is_full)
    with pytest.raises((OSError, SystemExit)):
        main(["-q", "predict", str(source), "--model", model_dir, "--output", str(out)])
    monkeypatch.undo()
    assert (
        out.read_text() == "the earlier results\n"
        and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    )
    with pytest.raises(SystemExit, match="3 of 3 records were not labelled"):
        main(["-q", "predict", str(source), "--model", model_dir, "--output", str(out), "--max-chars", "20"])
    assert out.read_text() == ""  # every article is over 20 characters: skipped, each said on stderr


def test_predict_skips_an_article_over_max_chars_and_says_so(model_dir, tmp_path, capsys):
    source = _jsonl(
        tmp_path / "in.jsonl", [{"id": "short", "text": "ضبط كبتاجون."}, {"id": "long", "text": "كلمة " * 50}]
    )
    with pytest.raises(SystemExit, match="1 of 2 records were not labelled"):
        main(["-q", "predict", str(source), "--model", model_dir, "--max-chars", "100"])
    captured = capsys.readouterr()
    assert [json.loads(line)["id"] for line in captured.out.splitlines()] == ["short"]
    assert "skipped article 'long': 249 characters, over --max-chars 100" in captured.err  # read stripped


def test_progress_counts_every_record_read_up_to_the_inputs_count(model_dir, articles, tmp_path):
    source = _jsonl(tmp_path / "in.jsonl", [*articles[:5], "{broken", {"id": "x"}, ""])
    assert scoring.count_records(source) == 7  # the blank line is not a record
    seen: list[int] = []
    score_local(model_dir, source, tmp_path / "out", batch_size=2, on_progress=seen.append)
    assert sum(seen) == 7
    again: list[int] = []
    score_local(model_dir, source, tmp_path / "out", batch_size=2, on_progress=again.append)  # all skipped
    assert sum(again) == 7


def test_the_bar_moves_per_batch_of_articles_not_per_part(model_dir, articles, tmp_path, monkeypatch):
    monkeypatch.setattr(scoring, "PROGRESS_ARTICLES", 3)
    source = _jsonl(tmp_path / "in.jsonl", articles[:8])
    seen: list[int] = []
    summary = score_local(model_dir, source, tmp_path / "out", batch_size=100, on_progress=seen.append)  # one part
    assert summary.parts == 1 and seen[:3] == [3, 3, 2] and sum(seen) == 8
    expected = score_local(model_dir, source, tmp_path / "whole", batch_size=100)  # one batch: the same rows
    assert read_output(tmp_path / "out") == read_output(tmp_path / "whole") and expected.scored == 8


def test_a_record_that_breaks_the_model_is_an_error_row_and_the_archive_goes_on(model_dir, tmp_path, monkeypatch):
    from helpers import BREAKS_THE_TOKENIZER, panic_on_marked_texts

    panic_on_marked_texts(monkeypatch)
    rows = [{"id": str(i), "text": "ضبط كبتاجون."} for i in range(4)]
    rows[2]["text"] = f"نص {BREAKS_THE_TOKENIZER} المرمّز."
    source = _jsonl(tmp_path / "in.jsonl", rows)
    summary = score_local(model_dir, source, tmp_path / "out", batch_size=4)
    assert (summary.scored, summary.errors) == (3, 1)
    (error,) = read_errors(tmp_path / "out")
    assert (error["id"], error["line"], error["field"]) == ("2", 3, "text")
    assert error["reason"] == "scoring failed: PanicException: regex panicked"


def test_a_spark_task_turns_a_record_that_breaks_the_model_into_an_error_row(model_dir, monkeypatch):
    """The executor side of the Spark engine, in this process: the driver writes rows without a
    reason to OUTPUT and the others to _errors/ (tests/integration/test_scoring_spark.py)."""
    from helpers import BREAKS_THE_TOKENIZER, panic_on_marked_texts

    from security_topics import scoring_spark

    panic_on_marked_texts(monkeypatch)
    monkeypatch.setattr(scoring_spark, "_PREDICTORS", {})
    texts = ["ضبط كبتاجون في الميناء.", f"نص {BREAKS_THE_TOKENIZER} المرمّز.", "هجوم إلكتروني على مصرف."]
    records = [
        {"source": "a.jsonl", "line": line, "id": f"a{line - 7}", "text": text, "title": None}
        for line, text in enumerate(texts, start=7)
    ]
    info = scoring.describe_model(model_dir, None)[1]
    batches = scoring_spark._score_batches(iter([pa.RecordBatch.from_pylist(records)]), model_dir, None, {}, info)
    table = pa.Table.from_batches(list(batches), schema=scoring_spark.SCORED_SCHEMA)
    rows = {row["id"]: row for row in table.to_pylist()}
    assert rows["a1"] == {
        **dict.fromkeys(scoring_spark.SCORED_SCHEMA.names),
        **{"id": "a1", "source": "a.jsonl", "line": 8, "field": "text"},
        "reason": "scoring failed: PanicException: regex panicked",
    }
    expected = Predictor.load(model_dir).predict_articles([texts[0], texts[2]])
    assert [rows["a0"]["topics"], rows["a2"]["topics"]] == [list(r.labels) for r in expected]
    assert rows["a0"]["reason"] is None and rows["a0"]["model"] == info
