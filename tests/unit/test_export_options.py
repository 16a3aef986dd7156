"""Export and backend options that need no trained model: clear one-line errors, precision choice."""

import pytest
from helpers import FakeModel

from security_topics.cli import main
from security_topics.errors import ConfigError
from security_topics.models.card import CARD_FILE, ModelCard
from security_topics.models.runtime import default_num_threads


def test_export_of_a_directory_without_a_model_is_one_clear_line(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    message = str(exit_info.value.code)
    assert message.startswith("security-topics export: ") and "\n" not in message
    assert CARD_FILE in message and "nowhere" in message
    assert not (tmp_path / "out").exists()


def test_export_of_a_tfidf_model_says_there_is_nothing_to_export(tmp_path):
    ModelCard("tfidf", ["a"], [0.5], {}).save(tmp_path / "m")
    with pytest.raises(SystemExit, match="TF-IDF model: it needs no torch and has nothing to export"):
        main(["export", str(tmp_path / "m"), str(tmp_path / "out"), "--no-retune"])


def test_export_never_overwrites_a_folder_that_is_not_a_model(tmp_path):
    ModelCard("transformer", ["a"], [0.5], {}, settings={"pooling": "mean"}).save(tmp_path / "m")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not an earlier export"):
        main(["export", str(tmp_path / "m"), str(tmp_path / "out"), "--no-retune"])
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_one_export_into_a_folder_at_a_time(tmp_path):
    from security_topics.atomic import hold_lock
    from security_topics.export import export_model

    ModelCard("transformer", ["a"], [0.5], {}, settings={"pooling": "mean"}).save(tmp_path / "m")
    with hold_lock(tmp_path / ".out.export-lock", "held"):  # as a running export holds it
        with pytest.raises(ConfigError, match=r"out: another export is writing into it"):
            export_model(tmp_path / "m", tmp_path / "out", validation=None, retune=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*staging*"))
    for _ in range(2):  # an export that fails (no weights here) releases the lock: the next one is not refused
        with pytest.raises(Exception) as failed:
            export_model(tmp_path / "m", tmp_path / "out", validation=None, retune=False)
        assert "another export" not in str(failed.value)


@pytest.mark.parametrize("option", [{"per_channel": True}, {"keep_fp32": ["ffn_out"]}])
def test_per_channel_and_keep_fp32_need_int8(tmp_path, option):
    from security_topics.export import export_model

    with pytest.raises(ConfigError, match="quantize=int8"):
        export_model(tmp_path, tmp_path / "out", **option)


def test_predict_rejects_a_bad_thread_count(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["predict", "-", "--num-threads", "0"])
    assert "whole number ≥ 1" in capsys.readouterr().err


def test_precision_auto_is_bf16_only_where_it_is_native(monkeypatch):
    import torch

    from security_topics.models import transformer

    cpu = torch.device("cpu")
    monkeypatch.setattr(transformer, "native_bf16", lambda device: False)
    assert transformer.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(transformer, "native_bf16", lambda device: True)
    assert transformer.resolve_precision("auto", cpu) == "bf16"
    assert transformer.resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ConfigError, match="precision must be one of"):
        transformer.resolve_precision("fp16", cpu)


def test_default_threads_leave_half_the_host():
    import os

    assert 1 <= default_num_threads() <= max(1, len(os.sched_getaffinity(0)))


def test_a_thread_count_over_the_usable_cpus_is_capped_with_a_warning(tmp_path, monkeypatch, caplog):
    from helpers import fit_tfidf

    from security_topics import Predictor
    from security_topics.models import runtime

    monkeypatch.setattr(runtime, "usable_cpus", lambda: 3)
    assert runtime.cap_threads(None) is None and runtime.cap_threads(2) == 2
    with caplog.at_level("WARNING", logger="security_topics.models.runtime"):
        assert runtime.cap_threads(100_000) == 3
    assert "num_threads=100000: only 3 CPUs are usable, using 3" in caplog.text

    class Loading(Exception):
        pass

    def load_model(*args, **kwargs):  # stops at the load: what matters is what it was asked for
        raise Loading(kwargs["num_threads"])

    monkeypatch.setattr("security_topics.predictor.load_model", load_model)
    with pytest.raises(Loading) as loading:
        Predictor.load(fit_tfidf(tmp_path), num_threads=100_000)
    assert loading.value.args == (3,)  # the model is loaded with the cap, not what was asked


def test_export_without_prepared_splits_says_what_to_run(tmp_path):
    from helpers import fit_tfidf

    from security_topics.export import load_validation
    from security_topics.labels import LabelSet

    labels = LabelSet.of(ModelCard.load(fit_tfidf(tmp_path / "m")).labels)
    with pytest.raises(
        ConfigError, match=r"no such file or folder \(prepare the splits with `python -m security_topics.prepare`"
    ):
        load_validation(tmp_path / "data/processed/security_topics", labels)


def test_an_exported_ensemble_asks_mlflow_for_onnxruntime_not_torch(tmp_path):
    from security_topics.mlflow_model import requirements

    ModelCard("tfidf", ["a"], [0.5], {}).save(tmp_path / "members" / "tfidf")
    ModelCard("onnx", ["a"], [0.5], {}).save(tmp_path / "members" / "e5")
    ModelCard("ensemble", ["a"], [0.5], {}, settings={"members": ["e5", "tfidf"], "weights": [0.5, 0.5]}).save(tmp_path)
    names = {line.split("==")[0] for line in requirements(tmp_path)}
    assert {"onnxruntime", "tokenizers"} <= names and not {"torch", "transformers"} & names


def test_the_export_is_measured_against_its_source_and_the_budget_names_each_breach():
    from security_topics.data import Article, Example
    from security_topics.export import against_source, over_budget

    # Four sentences; the export flips the second one's topic "a" (a true positive lost).
    s = ["جملة أولى.", "جملة ثانية.", "جملة ثالثة.", "جملة رابعة."]
    source = FakeModel({s[0]: [0.9, 0.1], s[1]: [0.8, 0.1], s[2]: [0.1, 0.9], s[3]: [0.1, 0.1]})
    export = FakeModel({s[0]: [0.9, 0.1], s[1]: [0.3, 0.1], s[2]: [0.1, 0.9], s[3]: [0.1, 0.1]})
    sentences = [Example(s[0], ("a",)), Example(s[1], ("a",)), Example(s[2], ("b",)), Example(s[3], ())]
    articles = [Article("1", "", s[0], ("a",)), Article("2", "", s[1], ("a",)), Article("3", "", s[2], ("b",))]

    figures = against_source(source, export, sentences, articles)

    assert figures["sentence_label_sets"] == 0.25 and abs(figures["article_label_sets"] - 1 / 3) < 1e-9
    assert figures["macro_f1_points"] < -0.5 and figures["article_macro_f1_points"] < -0.5
    breaches = over_budget(figures)
    assert len(breaches) == 4
    assert "changes 25.0 % of sentence label sets (budget 1 %)" in breaches
    assert over_budget(against_source(source, source, sentences, articles)) == []


def test_a_macro_f1_gain_is_no_breach_and_the_budget_lines_are_inclusive():
    from security_topics.export import BUDGET, over_budget

    at_the_line = {"macro_f1_points": -BUDGET["macro_f1_points"], **{k: BUDGET[k] for k in BUDGET if "sets" in k}}
    assert over_budget(at_the_line) == []
    assert over_budget({"macro_f1_points": 3.0, "article_macro_f1_points": 1.0}) == []
    assert over_budget({"article_macro_f1_points": -0.61}) == ["loses 0.61 points of article macro-F1 (budget 0.5)"]
