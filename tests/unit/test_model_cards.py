"""Damaged or hostile model cards stop loading with one line naming the file and the field."""

import json
import math

import pytest
from helpers import FakeModel

from security_topics.errors import ModelDirError
from security_topics.models.card import ModelCard


def _save(tmp_path, **changes):
    card = FakeModel({}).card
    card.save(tmp_path)
    values = json.loads((tmp_path / "security_topics.json").read_text())
    values.update(changes)
    (tmp_path / "security_topics.json").write_text(json.dumps(values, allow_nan=True))
    return tmp_path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"thresholds": [math.nan, 0.5]}, "is not a number a card may hold"),
        ({"thresholds": [math.inf, 0.5]}, "is not a number a card may hold"),
        ({"thresholds": [7.5, 0.5]}, r"field 'thresholds': expected numbers between 0 and 1, got 7.5"),
        ({"thresholds": ["0.5", 0.5]}, r"field 'thresholds': expected numbers between 0 and 1, got '0.5'"),
        ({"thresholds": [0.5]}, r"field 'thresholds': expected 2 numbers"),
        ({"labels": "ab"}, r"field 'labels': expected a list of topic names"),
        ({"family": ["pickle"]}, r"field 'family': expected a name"),
        ({"format_version": 9}, r"format_version 9, this code reads"),
        ({"article_rule": {"kind": "max", "thresholds": [0.5]}}, r"field 'article_rule.thresholds': expected 2"),
        ({"article_rule": {"kind": "max", "thresholds": [0.5, -1]}}, r"field 'article_rule.thresholds'"),
        ({"calibration": {"sentence": [{"kind": "none"}]}}, r"field 'calibration.sentence': expected one calibrator"),
        (
            {"review": {"bands": {"0.95": {"reject": [0.1, 0.1], "accept": [2, 1]}}}},
            r"field 'review.bands.0.95.accept'",
        ),
    ],
)
def test_a_damaged_card_names_the_file_and_field(tmp_path, changes, message):
    with pytest.raises(ModelDirError, match=message):
        ModelCard.load(_save(tmp_path, **changes))


def test_a_deeply_nested_or_huge_card_is_refused_in_one_line(tmp_path):
    _save(tmp_path)
    (tmp_path / "security_topics.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelDirError, match="not valid JSON"):
        ModelCard.load(tmp_path)
    (tmp_path / "security_topics.json").write_text(" " * (6 * 2**20))
    with pytest.raises(ModelDirError, match="not a regular card file of at most 5 MB"):
        ModelCard.load(tmp_path)


@pytest.mark.parametrize("name", ["../../x", "/etc", "..", "a/b"])
def test_an_ensemble_member_outside_its_folder_is_refused(tmp_path, name):
    from security_topics.models.ensemble import EnsembleModel

    card = ModelCard("ensemble", ["a", "b"], [0.5, 0.5], {}, settings={"members": [name], "weights": [1.0]})
    card.save(tmp_path)
    with pytest.raises(ModelDirError, match="field 'settings.members'"):
        EnsembleModel.load(tmp_path, ModelCard.load(tmp_path))


def test_a_symlinked_member_is_refused(tmp_path):
    from security_topics.models.ensemble import EnsembleModel

    outside = tmp_path / "outside"
    FakeModel({}).card.save(outside)
    model = tmp_path / "model"
    ModelCard("ensemble", ["a", "b"], [0.5, 0.5], {}, settings={"members": ["m"], "weights": [1.0]}).save(model)
    (model / "members").mkdir()
    (model / "members" / "m").symlink_to(outside)
    with pytest.raises(ModelDirError, match="member 'm' is not a folder inside members/"):
        EnsembleModel.load(model, ModelCard.load(model))


def _tfidf(tmp_path):
    from helpers import fit_tfidf

    return fit_tfidf(tmp_path / "model")


def test_a_fifo_in_a_model_folder_is_refused_not_read(tmp_path):
    import os

    from security_topics.models import load_model

    model = _tfidf(tmp_path)
    (model / "tfidf.safetensors").unlink()
    os.mkfifo(model / "tfidf.safetensors")  # reading it would block for ever
    with pytest.raises(ModelDirError, match=r"tfidf.safetensors: not a regular file"):
        load_model(model)


def test_a_link_out_of_the_model_folder_is_refused(tmp_path):
    from security_topics.models import load_model

    model = _tfidf(tmp_path)
    outside = tmp_path / "elsewhere.safetensors"
    (model / "tfidf.safetensors").rename(outside)
    (model / "tfidf.safetensors").symlink_to(outside)
    with pytest.raises(ModelDirError, match=r"tfidf.safetensors: a link to .*outside the model folder"):
        load_model(model)


def test_a_model_file_over_its_size_cap_is_refused(tmp_path, monkeypatch):
    from security_topics import models

    model = _tfidf(tmp_path)
    monkeypatch.setattr(models, "MAX_WEIGHTS_BYTES", 1000)
    with pytest.raises(ModelDirError, match=r"tfidf.safetensors: [\d,]+ bytes, over the 1,000 bytes"):
        models.load_model(model)


@pytest.mark.parametrize(
    ("ranges", "message"),
    [("x", "ngram_ranges': expected a mapping"), ({"word": [2, 1], "char": [2, 5]}, r"ngram_ranges.word': expected")],
)
def test_bad_ngram_ranges_in_a_tfidf_card_are_one_line(tmp_path, ranges, message):
    from security_topics.models import load_model

    model = _tfidf(tmp_path)
    card = json.loads((model / "security_topics.json").read_text())
    card["settings"]["ngram_ranges"] = ranges
    (model / "security_topics.json").write_text(json.dumps(card))
    with pytest.raises(ModelDirError, match=rf"security_topics.json: field 'settings.{message}"):
        load_model(model)


def test_a_native_crash_while_loading_is_one_model_error_for_every_caller(tmp_path, monkeypatch):
    """A tokenizer whose regex panics in Rust raises a BaseException: it must not escape `score`,
    `evaluate`, the pyfunc or Spark (all load through `load_model`) as a traceback."""
    from helpers import PanicException, fit_tfidf

    from security_topics import Predictor
    from security_topics.models.tfidf import TfidfModel

    model_dir = fit_tfidf(tmp_path / "m")

    def panicking(*args, **kwargs):
        raise PanicException("regex parse error")

    monkeypatch.setattr(TfidfModel, "load", panicking)
    message = r"m: a native library crashed while loading the model \(PanicException: regex parse error\)"
    with pytest.raises(ModelDirError, match=message):
        Predictor.load(model_dir)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TfidfModel, "load", interrupted)
    with pytest.raises(KeyboardInterrupt):  # never swallowed
        Predictor.load(model_dir)
