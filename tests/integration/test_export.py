"""Fast backends on a trained tiny transformer: ONNX fp32 equals torch, int8 and bf16 keep the label
sets, thresholds are re-tuned on the export's own scores, and an export serves without torch."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import drop_labels
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel

from security_topics import Predictor
from security_topics.data import read_sentences
from security_topics.errors import ConfigError
from security_topics.export import export_model
from security_topics.labels import LabelSet
from security_topics.models import load_model
from security_topics.models.card import ModelCard, ModelDirError
from security_topics.models.transformer import TopicClassifier

pytestmark = pytest.mark.slow

ARTICLE = (
    "أعلنت المديرية العامة لمكافحة المخدرات ضبط 3.5 مليون قرص كبتاجون مخبأة في شحنة فواكه. "
    "وقال المتحدث إن المهربين حاولوا إدخال الشحنة عبر منفذ الحديثة."
)


STAGES: dict[str, list[str]] = {}  # what each export said it was doing


@pytest.fixture(scope="module")
def exports(tiny_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    validation = Path(tiny_run.cfg.data.processed_dir)
    for name, quantize in (("fp32", None), ("int8", "int8")):
        options = {"quantize": quantize, "validation": validation, "num_threads": 1}
        export_model(tiny_run.model_dir, root / name, on_stage=STAGES.setdefault(name, []).append, **options)
    return root


def test_int8_keeps_the_chosen_weight_matmuls_in_fp32_and_names_an_unknown_group(tiny_run, tmp_path):
    import onnx

    validation = Path(tiny_run.cfg.data.processed_dir)
    options = {"quantize": "int8", "validation": validation, "retune": False}
    keep = ["ffn_out", "layer0", "layer1.query"]
    export_model(tiny_run.model_dir, tmp_path / "kept", keep_fp32=keep, **options)
    graph = onnx.load(str(tmp_path / "kept" / "model.onnx")).graph
    layers = AutoConfig.from_pretrained(tiny_run.model_dir).num_hidden_layers
    assert layers == 2
    weights = {t.name for t in graph.initializer}
    fp32 = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    assert len(fp32) == 6 + 2  # all of layer 0; layer 1's query and feed-forward output
    assert sum(n.op_type == "MatMulInteger" for n in graph.node) == 4 + 1  # the rest of layer 1, and the head
    assert ModelCard.load(tmp_path / "kept").settings["export"]["keep_fp32"] == keep
    with pytest.raises(ConfigError, match=r"keep_fp32: unknown groups \['ffn'\]; known: query, key, value.*layer1, or"):
        export_model(tiny_run.model_dir, tmp_path / "unknown", keep_fp32=["ffn"], **options)


def test_an_export_says_each_stage_as_it_starts(tiny_run, exports):
    assert STAGES["fp32"][0] == f"tracing {tiny_run.model_dir} to ONNX"
    assert STAGES["int8"][0] == f"tracing {tiny_run.model_dir} to ONNX and quantising it"
    assert all(stages[-1].startswith("re-tuning the decisions on ") for stages in STAGES.values())
    assert not [p.name for p in exports.iterdir() if ".staging-" in p.name]  # no staging folder left behind
    kept = {name: ModelCard.load(exports / name).settings["export"]["keep_fp32"] for name in ("fp32", "int8")}
    assert kept == {"fp32": [], "int8": ["ffn_out"]}  # int8 keeps the feed-forward outputs in fp32 unless told


@pytest.fixture(scope="module")
def sample(tiny_run):
    """A fixed sample: every sentence of the fixture corpus (train, validation and test)."""
    processed = Path(tiny_run.cfg.data.processed_dir)
    labels = LabelSet.of(ModelCard.load(Path(tiny_run.model_dir)).labels)
    return [
        e.text
        for split in ("train", "validation", "test")
        for e in read_sentences(processed / f"{split}.jsonl", labels)
    ]


def test_fp32_onnx_scores_equal_torch(tiny_run, exports, sample):
    torch_scores = load_model(tiny_run.model_dir, device="cpu", precision="fp32").score(sample)
    onnx_scores = load_model(exports / "fp32").score(sample)
    assert np.abs(onnx_scores.probs - torch_scores.probs).max() < 1e-4
    assert (onnx_scores.truncated == torch_scores.truncated).all()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"logits": "scores"}, r"model.onnx: outputs \['scores'\], expected 'logits'"),
        ({"labels": 3}, r"model.onnx: scores 5 topics but the card lists 3"),
    ],
)
def test_a_graph_that_does_not_fit_its_card_is_refused_at_load(exports, tmp_path, damage, message):
    import onnx

    damaged = tmp_path / "damaged"
    shutil.copytree(exports / "fp32", damaged)
    if "logits" in damage:  # the output renamed, in the graph and in the node that writes it
        graph = onnx.load(damaged / "model.onnx")
        for node in graph.graph.node:
            node.output[:] = [damage["logits"] if name == "logits" else name for name in node.output]
        graph.graph.output[0].name = damage["logits"]
        onnx.save(graph, damaged / "model.onnx")
    else:  # a card with fewer topics, sound on its own
        drop_labels(damaged / "security_topics.json", keep=damage["labels"])
    with pytest.raises(ModelDirError, match=message):
        load_model(damaged)


def test_fp32_export_retuned_on_the_same_validation_keeps_the_source_decisions(tiny_run, exports):
    source, exported = ModelCard.load(Path(tiny_run.model_dir)), ModelCard.load(exports / "fp32")
    assert exported.family == "onnx"
    provenance = exported.settings["export"]
    assert provenance["quantization"] is None and provenance["opset"] >= 17 and len(provenance["source_sha256"]) == 64
    assert provenance["validation"]["sentences"] > 0
    against = provenance["validation"]["against_source"]
    if source.settings["precision"] == "fp32":
        # the source's decisions were fitted on fp32 scores, which the graph reproduces: nothing changes
        assert exported.thresholds == source.thresholds
        assert exported.article_rule["kind"] == source.article_rule["kind"]
        assert np.allclose(exported.article_rule["thresholds"], source.article_rule["thresholds"])
        assert against["sentence_label_sets"] == 0 and against["article_label_sets"] == 0
        assert against["macro_f1_points"] == 0 and against["article_macro_f1_points"] == 0
    else:
        # fitted on bf16 scores (a CPU with native bf16): the export is re-tuned on its fp32 scores
        # and may move a threshold a step, no more than bf16 itself moves the scores
        assert np.abs(np.subtract(exported.thresholds, source.thresholds)).max() <= 0.05
        assert against["sentence_label_sets"] <= 0.05  # the share of validation sentences whose label set changes


@pytest.mark.parametrize("backend", ["int8", "bf16"])
def test_int8_and_bf16_label_sets_agree_with_fp32(tiny_run, exports, sample, backend):
    fp32 = load_model(tiny_run.model_dir, device="cpu")
    other = load_model(exports / "int8") if backend == "int8" else load_model(tiny_run.model_dir, "cpu", "bf16")
    thresholds = np.asarray(fp32.card.thresholds)  # the same thresholds: this measures the scores alone
    p32, p = fp32.score(sample).probs, other.score(sample).probs
    agree = np.mean(np.all((p32 >= thresholds) == (p >= thresholds), axis=1))
    assert agree >= 0.99, f"{backend}: label sets agree on {agree:.3f}, max |Δp| {np.abs(p - p32).max():.4f}"
    assert ModelCard.load(exports / "int8").settings["export"]["quantization"] == "int8-dynamic"


def test_bf16_stores_linear_weights_in_bf16_and_scores_as_autocast_over_fp32_weights(tiny_run, sample):
    bf16 = load_model(tiny_run.model_dir, "cpu", "bf16")
    linears = [m for m in bf16.classifier.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert bf16.classifier.encoder.embeddings.word_embeddings.weight.dtype == torch.float32
    autocast_only = load_model(tiny_run.model_dir, "cpu", "fp32")
    autocast_only.precision = "bf16"  # autocast over the fp32 weights, as before weights were stored in bf16
    assert np.abs(bf16.score(sample).probs - autocast_only.score(sample).probs).max() < 1e-6


def test_a_text_scores_the_same_alone_and_among_batch_neighbours(tiny_run, sample):
    model = load_model(tiny_run.model_dir, device="cpu")
    together = model.score(sample).probs  # length batches, padded to their longest
    alone = np.concatenate([model.score([text]).probs for text in sample[:40]])
    assert np.abs(together[:40] - alone).max() < 1e-5


def test_batches_run_side_by_side_on_the_threads_torch_may_use_with_the_same_scores(tiny_run, sample, monkeypatch):
    model = load_model(tiny_run.model_dir, device="cpu")
    threads_seen: set[int] = set()
    score_batch = model._score_batch
    monkeypatch.setattr(
        model, "_score_batch", lambda *args: (threads_seen.add(threading.get_ident()), score_batch(*args))
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = model.score(sample, batch_size=8).probs
        assert threads_seen == {threading.get_ident()}
        threads_seen.clear()
        torch.set_num_threads(2)
        side_by_side = model.score(sample, batch_size=8).probs
        assert len(threads_seen) == 2 and threading.get_ident() not in threads_seen
        assert torch.get_num_threads() == 2  # the caller's setting survives the workers' one thread each
    finally:
        torch.set_num_threads(before)
    assert np.abs(side_by_side - serial).max() < 1e-5


def test_meta_device_loading_gives_the_same_scores_as_a_full_build(tiny_run):
    model = load_model(tiny_run.model_dir, device="cpu")
    directory = Path(tiny_run.model_dir)
    built = TopicClassifier(AutoModel.from_config(AutoConfig.from_pretrained(directory)), len(model.card.labels))
    built.load_state_dict(load_file(str(directory / "model.safetensors")))
    texts = ["تفكيك خلية إرهابية في بغداد", "هجوم فدية على شبكة المستشفى", "فاز الفريق بالمباراة"]
    probs = model.score(texts).probs
    model.classifier = built.eval()
    assert np.array_equal(model.score(texts).probs, probs)
    assert not any(p.is_meta for p in model.classifier.parameters())


def test_an_export_serves_where_torch_can_not_be_imported(exports, tmp_path):
    for blocked in ("torch", "transformers"):  # first on the path: `import torch` raises ImportError
        (tmp_path / blocked).mkdir()
        (tmp_path / blocked / "__init__.py").write_text(f"raise ImportError('{blocked} is blocked in this test')\n")
    script = textwrap.dedent(
        f"""
        import json, sys
        from security_topics import Predictor
        result = Predictor.load({str(exports / "int8")!r}, num_threads=1).predict_article({ARTICLE!r})
        assert "torch" not in sys.modules and "transformers" not in sys.modules
        print(json.dumps({{"labels": list(result.labels), "scores": result.scores}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    served = json.loads(out.stdout.strip().splitlines()[-1])
    here = Predictor.load(exports / "int8").predict_article(ARTICLE)
    assert served["labels"] == list(here.labels)
    assert np.allclose([served["scores"][n] for n in here.scores], list(here.scores.values()), atol=1e-6)
    blocked = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert "torch is blocked" in blocked.stderr


def test_precision_auto_serves_the_fastest_measured_backend_and_measures_once(tiny_run, exports, tmp_path, monkeypatch):
    from security_topics.models.onnx import OnnxModel
    from security_topics.models.transformer import native_bf16

    root = tmp_path / "models"
    shutil.copytree(tiny_run.model_dir, root / "tiny")
    shutil.copytree(exports / "int8", root / "tiny-int8")  # an export beside its source, as README shows
    card = ModelCard.load(root / "tiny-int8")
    card.settings["export"]["validation"]["against_source"] = {"macro_f1_points": 0.0, "sentence_label_sets": 0.0}
    card.save(root / "tiny-int8")
    monkeypatch.setenv("SECURITY_TOPICS_CACHE_DIR", str(tmp_path / "cache"))

    model = load_model(root / "tiny", device="cpu", precision="auto", num_threads=1)

    (entry,) = json.loads((tmp_path / "cache" / "backends.json").read_text())["entries"].values()
    expected = {"fp32", "export tiny-int8"} | ({"bf16"} if native_bf16(torch.device("cpu")) else set())
    assert set(entry["rates"]) == expected and min(entry["rates"].values()) > 0 and entry["threads"] == 1
    texts = ["تفكيك خلية إرهابية في بغداد", "هجوم فدية على شبكة المستشفى", "فاز الفريق بالمباراة", ARTICLE]
    if isinstance(model, OnnxModel):
        reference = load_model(root / "tiny-int8", num_threads=1)
    else:
        reference = load_model(root / "tiny", device="cpu", precision=model.precision)
    assert np.array_equal(model.score(texts).probs, reference.score(texts).probs)

    again = load_model(root / "tiny", device="cpu", precision="auto", num_threads=1)
    (cached,) = json.loads((tmp_path / "cache" / "backends.json").read_text())["entries"].values()
    assert cached == entry and type(again) is type(model)  # read from the cache, not measured again
