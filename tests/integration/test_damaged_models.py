"""A damaged model directory ends `predict` with one line naming the file and what is wrong."""

import json
import shutil

import pytest
from helpers import drop_labels

from security_topics.cli import main

pytestmark = pytest.mark.slow


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _set(card_path, **settings):
    card = json.loads(card_path.read_text())
    card["settings"].update(settings)
    card_path.write_text(json.dumps(card))


def _set_config(config_path, **values):
    config = json.loads(config_path.read_text())
    config.update(values)
    config_path.write_text(json.dumps(config))


CASES = {
    "truncated card": (
        "tfidf_run",
        lambda d: _truncate(d / "security_topics.json"),
        r"security_topics.json: not valid JSON",
    ),
    "truncated tfidf weights": (
        "tfidf_run",
        lambda d: _truncate(d / "tfidf.safetensors"),
        r"tfidf.safetensors: missing or damaged",
    ),
    "tfidf card disagrees": (
        "tfidf_run",
        lambda d: drop_labels(d / "security_topics.json"),
        r"tfidf.safetensors: .*do not match the card",
    ),
    "truncated transformer weights": (
        "tiny_run",
        lambda d: _truncate(d / "model.safetensors", 0.001),
        r"model.safetensors is damaged",
    ),
    "missing tokenizer": ("tiny_run", lambda d: (d / "tokenizer.json").unlink(), r"tokenizer.json: missing"),
    "pooling not known": (
        "tiny_run",
        lambda d: _set(d / "security_topics.json", pooling="evil"),
        r"field 'settings.pooling': expected 'cls' or 'mean', got 'evil'",
    ),
    "max_length over the position table": (
        "tiny_run",
        lambda d: _set(d / "security_topics.json", max_length=1_000_000),
        r"field 'settings.max_length': expected a whole number from 8 to \d+",
    ),
    "absurd size in config.json": (
        "tiny_run",
        lambda d: _set_config(d / "config.json", max_position_embeddings=10**12),
        r"config.json: field 'max_position_embeddings': expected a whole number from 1 to 131,072, got 1000000000000",
    ),
    "size in config.json not a number": (
        "tiny_run",
        lambda d: _set_config(d / "config.json", hidden_size="huge"),
        r"config.json: field 'hidden_size': expected a whole number from 1 to 16,384, got 'huge'",
    ),
    "transformer card disagrees": (
        "tiny_run",
        lambda d: drop_labels(d / "security_topics.json"),
        r"model.safetensors: the head scores 5 topics but the card .* lists 3",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_damaged_model_directory_is_named_in_one_line(case, request, tmp_path, capsys):
    fixture, damage, message = CASES[case]
    model = tmp_path / "model"
    shutil.copytree(request.getfixturevalue(fixture).model_dir, model)
    damage(model)
    article = tmp_path / "a.txt"
    article.write_text("أعلنت الشرطة ضبط شحنة كبتاجون في ميناء جدة.", encoding="utf-8")
    with pytest.raises(SystemExit, match=message) as stopped:
        main(["predict", str(article), "--model", str(model)])
    assert "\n" not in str(stopped.value.code)
