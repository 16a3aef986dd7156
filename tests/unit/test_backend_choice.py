"""`precision="auto"` chooses by measurement: the fastest backend inside the accuracy budget, the card's
own precision unless another is clearly faster, measured once per CPU model, threads and model files."""

import json
import logging
import os
from pathlib import Path

import pytest
from helpers import FakeModel

from security_topics.models import backends, transformer
from security_topics.models.card import ModelCard, ModelDirError, directory_digest

IN_BUDGET = {"macro_f1_points": -0.15, "sentence_label_sets": 0.0057, "article_label_sets": 0.0}
OVER_BUDGET = {"macro_f1_points": -0.22, "sentence_label_sets": 0.017, "article_label_sets": 0.054}


def _source(root, precision="bf16"):
    directory = root / "default"
    ModelCard("transformer", ["a"], [0.5], {}, settings={"pooling": "mean", "precision": precision}).save(directory)
    (directory / "model.safetensors").write_bytes(b"weights")
    return directory


def _export(root, name, source_digest, against_source):
    validation = {"against_source": against_source} if against_source is not None else {}
    export = {"source_sha256": source_digest, "quantization": "int8", "validation": validation}
    ModelCard("onnx", ["a"], [0.5], {}, settings={"export": export}).save(root / name)
    (root / name / "model.onnx").write_bytes(b"graph")
    return root / name


class Host:
    """A fake host: what loading and measuring were asked, and the rates it reports."""

    def __init__(self, rates, broken=()):
        self.rates, self.broken = rates, set(broken)
        self.loaded, self.measured = [], 0

    def load(self, directory, precision):
        self.loaded.append((directory.name, precision))
        if directory.name in self.broken:
            raise ModelDirError(f"{directory}: model.onnx is damaged")
        return FakeModel({})

    def measure(self, models, failures):
        self.measured += 1
        for name in models:
            if isinstance(self.rates[name], Exception):
                failures[name] = f"fails to score ({self.rates[name]})"
        return {name: self.rates[name] for name in models if name not in failures}


@pytest.fixture
def cpu_with_bf16(monkeypatch):
    monkeypatch.setattr(backends, "_cpu_facts", lambda device: (True, True))


def _choose(source, host, **options):
    card = ModelCard.load(source)
    return backends.choose(
        source, card, host.load, device="cpu", measure=host.measure, cache=source.parent / "cache.json", **options
    )


def test_auto_chooses_the_fastest_backend_inside_the_budget_and_says_why(tmp_path, cpu_with_bf16):
    source = _source(tmp_path)
    digest = directory_digest(source)
    _export(tmp_path, "default-int8", digest, IN_BUDGET)
    _export(tmp_path, "default-int8-all", digest, OVER_BUDGET)
    _export(tmp_path, "default-int8-unmeasured", digest, None)
    _export(tmp_path, "other-int8", "0" * 64, IN_BUDGET)  # another model's export
    host = Host({"fp32": 45.6, "bf16": 81.8, "export default-int8": 99.8})

    choice = _choose(source, host)

    assert choice.backend.name == "export default-int8" and choice.backend.directory == tmp_path / "default-int8"
    assert sorted(name for name, _ in host.loaded) == ["default", "default", "default-int8"]
    assert choice.rates == {"fp32": 45.6, "bf16": 81.8, "export default-int8": 99.8}
    assert choice.left_out == {
        "export default-int8-all": "over the accuracy budget: changes 1.7 % of sentence label sets (budget 1 %); "
        "changes 5.4 % of article label sets (budget 5 %)",
        "export default-int8-unmeasured": "over the accuracy budget: records no measurement against its source",
    }
    assert choice.reason.startswith("fastest, over 5% ahead of bf16; sentences/s export default-int8 99.8, bf16 81.8")
    assert choice.model is not None  # the measured model is served, not loaded twice


def test_the_cards_precision_stays_unless_another_backend_is_over_the_margin_faster(tmp_path, cpu_with_bf16):
    source = _source(tmp_path)
    _export(tmp_path, "default-int8", directory_digest(source), IN_BUDGET)
    choice = _choose(source, Host({"fp32": 45.0, "bf16": 80.0, "export default-int8": 83.0}))
    assert choice.backend.name == "bf16" and choice.backend.precision == "bf16"
    assert choice.reason.startswith("the card's precision, nothing over 5% faster; sentences/s export")

    fp32_card = _source(tmp_path / "older", precision="fp32")  # decisions tuned on fp32 scores
    choice = _choose(fp32_card, Host({"fp32": 45.0, "bf16": 80.0}))
    assert choice.backend.name == "bf16"


def test_a_second_call_reads_the_cache_and_changed_files_or_threads_measure_again(tmp_path, cpu_with_bf16):
    source = _source(tmp_path)
    export = _export(tmp_path, "default-int8", directory_digest(source), IN_BUDGET)
    host = Host({"fp32": 45.0, "bf16": 80.0, "export default-int8": 99.0})

    _choose(source, host)
    host.loaded.clear()
    again = _choose(source, host)
    assert host.measured == 1 and host.loaded == []  # nothing loaded or measured: the caller loads the choice
    assert again.backend.name == "export default-int8" and again.model is None
    assert "measured 20" in again.reason and str(tmp_path / "cache.json") in again.reason

    _choose(source, host, num_threads=1)
    assert host.measured == 2  # rates are per thread count
    os.utime(export / "model.onnx", ns=(1, 1))  # a new export in the same place
    _choose(source, host, num_threads=1)
    assert host.measured == 3
    entries = json.loads((tmp_path / "cache.json").read_text())["entries"].values()
    assert {entry["cpu"] for entry in entries} == {backends.cpu_model()}


def test_without_native_bf16_or_an_export_there_is_nothing_to_measure(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "_cpu_facts", lambda device: (True, False))
    host = Host({})
    choice = _choose(_source(tmp_path), host)
    assert (choice.backend.name, choice.backend.precision) == ("fp32", "fp32")
    assert host.measured == 0 and host.loaded == []
    assert choice.reason == (
        "the only backend (bf16 left out: this CPU has no native bf16 (emulated bf16 is slower than fp32))"
    )


def test_an_export_that_does_not_load_or_score_is_left_out_once_and_the_rest_are_measured(tmp_path, cpu_with_bf16):
    source = _source(tmp_path)
    _export(tmp_path, "default-int8", directory_digest(source), IN_BUDGET)
    _export(tmp_path, "default-int8-b", directory_digest(source), IN_BUDGET)
    rates = {"fp32": 45.0, "bf16": 80.0, "export default-int8-b": RuntimeError("ORT: bad node")}
    host = Host(rates, broken={"default-int8"})
    choice = _choose(source, host)
    assert choice.backend.name == "bf16" and set(choice.rates) == {"fp32", "bf16"}
    assert choice.left_out["export default-int8"].startswith("does not load (")
    assert choice.left_out["export default-int8-b"] == "fails to score (ORT: bad node)"
    again = _choose(source, host)  # the failures are cached with the rates: not loaded or measured again
    assert host.measured == 1 and again.left_out == choice.left_out and again.backend.name == "bf16"


def test_measuring_leaves_out_a_model_that_raises_while_scoring():
    class Broken(FakeModel):
        def score(self, texts, batch_size=64):
            raise RuntimeError("ORT: bad node")

    failures = {}
    rates = backends.measure_rates({"good": FakeModel({}), "broken": Broken({})}, failures, texts=["x"] * 4, rounds=1)
    assert set(rates) == {"good"} and failures == {"broken": "fails to score (RuntimeError: ORT: bad node)"}


def test_an_unreadable_sibling_folder_is_passed_over(tmp_path, cpu_with_bf16, monkeypatch):
    source = _source(tmp_path)
    _export(tmp_path, "default-int8", directory_digest(source), IN_BUDGET)
    _export(tmp_path, "locked", directory_digest(source), IN_BUDGET)
    load = ModelCard.load

    def unreadable(directory):
        if directory.name == "locked":
            raise PermissionError(13, "Permission denied", str(directory))
        return load(directory)

    monkeypatch.setattr(ModelCard, "load", staticmethod(unreadable))
    choice = _choose(source, Host({"fp32": 45.0, "bf16": 80.0, "export default-int8": 99.0}))
    assert choice.backend.name == "export default-int8" and "export locked" not in choice.rates


def test_exports_are_looked_for_beside_the_path_given_not_beside_a_links_target(tmp_path, cpu_with_bf16):
    source = _source(tmp_path / "store")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "default").symlink_to(source)
    _export(tmp_path / "models", "default-int8", directory_digest(source), IN_BUDGET)
    choice = _choose(tmp_path / "models" / "default", Host({"fp32": 45.0, "bf16": 80.0, "export default-int8": 99.0}))
    assert choice.backend.name == "export default-int8"


def test_the_source_itself_failing_to_load_is_the_callers_error(tmp_path, cpu_with_bf16):
    source = _source(tmp_path)
    _export(tmp_path, "default-int8", directory_digest(source), IN_BUDGET)
    with pytest.raises(ModelDirError, match="damaged"):
        _choose(source, Host({}, broken={"default"}))


DAMAGED_ENTRY = '{"version": 1, "digests": {}, "entries": {"%s": {"rates": {"fp32": "fast"}, "cpu": 3}}}'


@pytest.mark.parametrize("content", ["{", '{"version": 0, "entries": {}}', "[]", DAMAGED_ENTRY])
def test_a_damaged_cache_is_measured_again_with_a_warning(tmp_path, cpu_with_bf16, caplog, content):
    source = _source(tmp_path)
    key = backends._cache_key(source, [backends.Backend(n, source, n) for n in ("fp32", "bf16")], None)
    (tmp_path / "cache.json").write_text(content.replace("%s", key))
    host = Host({"fp32": 45.0, "bf16": 80.0})
    with caplog.at_level(logging.WARNING, logger=backends.__name__):
        assert _choose(source, host).backend.name == "bf16"
    assert host.measured == 1 and ("measuring again" in caplog.text or content == DAMAGED_ENTRY)
    assert json.loads((tmp_path / "cache.json").read_text())["version"] == backends.CACHE_VERSION


def test_an_unwritable_cache_is_a_warning_not_an_error(tmp_path, cpu_with_bf16, caplog):
    source = _source(tmp_path)
    (tmp_path / "cache.json").mkdir()  # a folder where the file should be
    with caplog.at_level(logging.WARNING, logger=backends.__name__):
        assert _choose(source, Host({"fp32": 45.0, "bf16": 80.0})).backend.name == "bf16"
    assert "could not save the backend measurement" in caplog.text


def test_the_cache_lives_where_the_environment_says(monkeypatch, tmp_path):
    monkeypatch.setenv("SECURITY_TOPICS_CACHE_DIR", str(tmp_path / "mine"))
    assert backends.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("SECURITY_TOPICS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert backends.cache_dir() == tmp_path / "xdg" / "security-topics"


def test_measure_rates_interleaves_rounds_and_keeps_the_best(monkeypatch):
    clock = iter([0.0, 1.0, 1.0, 1.5, 1.5, 3.5, 3.5, 4.0, 4.0, 6.0, 6.0, 6.5])  # a: 1, 2, 2 s; b: .5 s each
    monkeypatch.setattr(backends.time, "perf_counter", lambda: next(clock))
    a, b = FakeModel({}), FakeModel({})
    rates = backends.measure_rates({"a": a, "b": b}, {}, texts=["x"] * 10, rounds=3)
    assert rates == {"a": 10.0, "b": 20.0}
    assert [len(call) for call in a.calls] == [4, 10, 10, 10]  # a warm-up, then three timed rounds


def test_the_cpus_flags_answer_as_torch_does_and_a_gpu_is_left_to_torch(monkeypatch):
    import torch

    on_cpu, native = backends._cpu_facts("cpu")
    assert on_cpu is True and native == transformer.native_bf16(torch.device("cpu"))  # this Linux host's flags
    assert backends._cpu_facts("cuda:0") == (False, None)
    choice = backends.choose(Path("unused"), ModelCard("transformer", ["a"], [0.5], {}), Host({}).load, device="cuda")
    assert choice.backend.precision == "auto" and choice.reason.startswith("cuda: bf16 where the device has it")


def test_an_ensembles_reference_is_the_precision_its_transformer_member_was_tuned_in(tmp_path, cpu_with_bf16):
    directory = tmp_path / "default"
    settings = {"pooling": "mean", "precision": "bf16"}
    ModelCard("transformer", ["a"], [0.5], {}, settings=settings).save(directory / "members" / "e5")
    ModelCard("tfidf", ["a"], [0.5], {}).save(directory / "members" / "tfidf")
    ModelCard("ensemble", ["a"], [0.5], {}, settings={"members": ["e5", "tfidf"], "weights": [0.5, 0.5]}).save(
        directory
    )
    assert backends.families(directory, ModelCard.load(directory)) == {"ensemble", "transformer", "tfidf"}
    choice = _choose(directory, Host({"fp32": 80.0, "bf16": 79.0}))
    assert choice.backend.name == "bf16" and choice.reason.startswith("the card's precision")
