"""Export a trained model for fast CPU serving: `security-topics export MODEL_DIR OUT_DIR --format onnx`.

The transformer (alone, or as an ensemble member; other members are copied as they are) becomes an
ONNX graph (encoder, pooling and head; eager attention, exported with `torch.onnx.export`), optionally
with int8 weights (ONNX Runtime dynamic quantisation). The exported directory is a complete model
directory of the `onnx` family that `Predictor.load` serves without importing torch. Its card is the
source's plus provenance (source checksums, opset, quantisation, agreement with the source), and its
thresholds and article rule are learnt again on the exported model's own validation scores: int8
moves scores a little, and thresholds tuned on fp32 scores would no longer sit at their best.
"""

from __future__ import annotations

import copy
import logging
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from security_topics.atomic import hold_lock, staging_for, swap_into_place
from security_topics.data import Article, Example, read_articles, read_sentences
from security_topics.decisions import compare, decide, fit_decisions, settings_from_card
from security_topics.errors import ConfigError, ProjectError
from security_topics.labels import LabelSet
from security_topics.metrics import compute_metrics
from security_topics.models import load_model
from security_topics.models.backends import BUDGET, over_budget  # noqa: F401 - the budget exports are held to
from security_topics.models.card import ModelCard, TopicModel, directory_digest
from security_topics.models.ensemble import MEMBERS
from security_topics.models.onnx import GRAPH, INPUTS, OUTPUT, TOKENIZER, OnnxModel, open_session
from security_topics.models.runtime import cap_threads
from security_topics.predictor import Predictor

log = logging.getLogger(__name__)

FORMATS = ("onnx",)
QUANTIZATIONS = (None, "int8")
# int8 leaves the feed-forward output MatMuls in fp32: of the six weight MatMuls of a layer, the one
# whose fp32 copy removed most of int8's drift (benchmarks/int8_sensitivity.py; README: Fast CPU scoring).
KEEP_FP32 = ("ffn_out",)
OPSET = 18
DEFAULT_VALIDATION = Path("data/processed/security_topics")  # `python -m security_topics.prepare` writes it
CHECK_SENTENCES = 64  # validation sentences scored by source and export alike, to record how far they differ
FP32_TOLERANCE = 1e-3  # an fp32 graph further than this from torch is an export bug, not rounding
FALLBACK_CHECK = (
    "أعلنت السلطات ضبط شحنة مخدرات في الميناء.",
    "هجوم إلكتروني يعطل أنظمة المطار لساعات.",
    "فاز الفريق في المباراة وسط إجراءات أمنية مشددة.",
)


@dataclass
class ExportReport:
    """What an export did: where, the exported members, and the re-tuned thresholds' validation scores."""

    out_dir: Path
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)


def export_model(
    model_dir: str | Path,
    out_dir: str | Path,
    fmt: str = "onnx",
    quantize: str | None = None,
    per_channel: bool = False,
    validation: str | Path | None = DEFAULT_VALIDATION,
    retune: bool = True,
    num_threads: int | None = None,
    on_stage: Callable[[str], Any] | None = None,
    keep_fp32: Sequence[str] | None = None,
) -> ExportReport:
    """Export `model_dir` (a transformer or an ensemble holding one) to `out_dir`; see the module doc.

    `on_stage(text)` is told each stage as it starts (a command shows them: an export takes minutes).
    `keep_fp32`: groups of the encoder's weight MatMuls left in fp32 by int8 quantisation (`ROLES`,
    `layerN`; `weight_matmul_groups`), the ones that measure most sensitive; None: KEEP_FP32.
    `validation`: a prepared-splits directory (its `validation.jsonl` and, if there,
    `articles_validation.jsonl`) or one labelled sentence file (.csv/.jsonl); with `retune=False` it
    is only used to measure agreement and the source thresholds are kept.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    num_threads = cap_threads(num_threads)
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {FORMATS}, got {fmt!r}")
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize must be one of {QUANTIZATIONS[1:]} or none, got {quantize!r}")
    if (per_channel or keep_fp32) and not quantize:
        raise ConfigError("per_channel and keep_fp32 apply to a quantised export: add quantize=int8")
    keep_fp32 = list(KEEP_FP32 if keep_fp32 is None and quantize else keep_fp32 or ())
    card = ModelCard.load(model_dir)
    _check_exportable(model_dir, card)
    _check_replaceable(out_dir, model_dir)
    labels = LabelSet.of(card.labels)
    sentences, articles = load_validation(validation, labels) if (retune or validation) else ([], [])
    if retune and not sentences:
        raise ConfigError(f"no validation sentences in {validation}: give some, or keep the source thresholds")
    check_texts = [e.text for e in sentences[:CHECK_SENTENCES]] or list(FALLBACK_CHECK)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = hold_lock(  # beside out_dir, which is swapped by rename: one export into it at a time
        out_dir.parent / f".{out_dir.name}.export-lock",
        f"{out_dir}: another export is writing into it; wait for it, or export into another folder",
    )
    staging = None
    stage = on_stage or (lambda text: None)
    report = ExportReport(out_dir)
    try:
        _check_replaceable(out_dir, model_dir)  # again, now that no other export can change it
        staging = staging_for(out_dir)  # unique: two exports into one folder never share a half-built one
        provenance = {
            "format": fmt,
            "opset": OPSET,
            "quantization": _quantization_name(quantize, per_channel),
            "keep_fp32": keep_fp32,
            "source": str(model_dir),
            "source_sha256": directory_digest(model_dir),
            "torch": metadata.version("torch").split("+")[0],
            "onnxruntime": metadata.version("onnxruntime"),
        }
        if card.family == "transformer":
            stage(f"tracing {model_dir} to ONNX{' and quantising it' if quantize else ''}")
            report.members["."] = _export_transformer(model_dir, staging, quantize, per_channel, check_texts, keep_fp32)
            exported = ModelCard.load(staging)
        else:
            for name in card.settings["members"]:
                source, target = model_dir / MEMBERS / name, staging / MEMBERS / name
                if ModelCard.load(source).family == "transformer":
                    stage(f"tracing member {name} to ONNX{' and quantising it' if quantize else ''}")
                    report.members[name] = _export_transformer(
                        source, target, quantize, per_channel, check_texts, keep_fp32
                    )
                else:
                    shutil.copytree(source, target)
            exported = copy.deepcopy(card)
        exported.settings["export"] = provenance
        exported.save(staging)
        if sentences:
            stage(f"re-tuning the decisions on {len(sentences)} validation sentences and measuring against the source")
            model = load_model(staging, device="cpu", num_threads=num_threads)
            report.validation = retune_card(model, sentences, articles, retune)
            source = load_model(model_dir, device="cpu")
            report.validation["against_source"] = against_source(source, model, sentences, articles)
            for breach in over_budget(report.validation["against_source"]):
                log.warning(
                    "%s: on the validation data the export %s; check it on your own data, or serve the "
                    "source model with precision=bf16 where the CPU has it",
                    out_dir,
                    breach,
                )
            exported.settings["export"]["validation"] = report.validation
            model.card.settings["export"] = exported.settings["export"]
            model.card.save(staging)
        swap_into_place(staging, out_dir)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        lock.close()  # on every way out: a process that goes on (a notebook, serve) must not keep it
    return report


def _check_replaceable(out_dir: Path, model_dir: Path) -> None:
    """An export replaces only an earlier export (or an empty folder): never the source, a trained
    model or other files."""
    if not out_dir.exists():
        return
    if out_dir.resolve() == model_dir.resolve():
        raise ConfigError(f"{out_dir}: the export must go to another directory than the model")
    if not out_dir.is_dir():
        raise ConfigError(f"out_dir {out_dir} is a file: choose a folder")
    if not any(out_dir.iterdir()):
        return
    try:
        earlier = ModelCard.load(out_dir)
    except Exception:  # noqa: BLE001 - whatever is there, it is not an export to replace
        earlier = None
    if earlier is None or "export" not in earlier.settings:
        raise ConfigError(
            f"out_dir {out_dir} holds files that are not an earlier export (a trained model, or other "
            "files): export into a new folder"
        )


def _check_exportable(model_dir: Path, card: ModelCard) -> None:
    if card.family == "onnx":
        raise ConfigError(f"{model_dir} is already an exported ONNX model; export its source model instead")
    if card.family == "tfidf":
        raise ConfigError(f"{model_dir} is a TF-IDF model: it needs no torch and has nothing to export")
    if card.family == "ensemble":
        members = card.settings.get("members") or []
        families = [ModelCard.load(model_dir / MEMBERS / name).family for name in members]
        if "transformer" not in families:
            raise ConfigError(f"{model_dir}: no transformer among the ensemble members {members} ({families})")
    elif card.family != "transformer":
        raise ConfigError(f"{model_dir}: a {card.family!r} model can not be exported (transformer or ensemble)")


def _quantization_name(quantize: str | None, per_channel: bool) -> str | None:
    if not quantize:
        return None
    return f"{quantize}-dynamic{'-per-channel' if per_channel else ''}"


def load_validation(path: str | Path | None, labels: LabelSet) -> tuple[list[Example], list[Article]]:
    """Labelled validation sentences (and articles, from a prepared-splits directory)."""
    if path is None:
        return [], []
    path = Path(path)
    what_to_do = (
        "prepare the splits with `python -m security_topics.prepare`, point the export at a labelled "
        "sentence file (--validation), or keep the source thresholds (--no-retune)"
    )
    if path.is_dir():
        if not (path / "validation.jsonl").is_file():
            raise ConfigError(f"{path}: no validation.jsonl ({what_to_do})")
        articles_file = path / "articles_validation.jsonl"
        articles = read_articles(articles_file, labels) if articles_file.is_file() else []
        return read_sentences(path / "validation.jsonl", labels), articles
    if not path.is_file():
        raise ConfigError(f"validation data {path}: no such file or folder ({what_to_do})")
    return read_sentences(path, labels), []


def retune_card(
    model: TopicModel, sentences: Sequence[Example], articles: Sequence[Article], retune: bool = True
) -> dict[str, Any]:
    """Fit every decision again (sentence thresholds, the article rule of the same kind as before,
    calibration and the review band) on `model`'s own validation scores and write it into its card;
    return validation metrics before and after."""
    card = model.card
    labels = LabelSet.of(card.labels)
    y = labels.encode_many([e.labels for e in sentences])
    source_decisions = decide(Predictor(model), sentences, [])
    result: dict[str, Any] = {
        "sentences": len(sentences),
        "articles": len(articles),
        "source_thresholds": list(card.thresholds),
        "val_macro_f1_source_thresholds": compute_metrics(y, source_decisions.sentence_labels, labels.names)[
            "macro_f1"
        ],
    }
    if not retune:
        return result
    if card.article_rule and not articles:
        log.warning("no validation articles: the article rule is the source's, learnt on its own scores")
    settings = settings_from_card(card)
    rule, calibration, review = dict(card.article_rule), dict(card.calibration), dict(card.review)
    fitted = fit_decisions(model, sentences, articles, settings)
    if card.article_rule != rule:
        result["source_article_rule"] = rule
    if not articles:  # keep what needs articles to learn: the rule, article calibration, the band
        card.article_rule = rule
        card.calibration = {**calibration, "sentence": card.calibration["sentence"]}
        card.review = {**review, "sentence_bands": card.review.get("sentence_bands", {})}
    result["val_macro_f1"] = fitted["metrics"]["val_macro_f1"]
    result.update({k: v for k, v in fitted["metrics"].items() if k.startswith("article_rule_cv_")})
    return result


def against_source(
    source: TopicModel, exported: TopicModel, sentences: Sequence[Example], articles: Sequence[Article]
) -> dict[str, float]:
    """How far the export's decisions are from the source's, each with its own card (`decisions.compare`)."""
    return compare(
        decide(Predictor(source), sentences, articles),
        decide(Predictor(exported), sentences, articles),
        sentences,
        articles,
    )


class _Logits:
    """The classifier as a graph from token ids and mask to logits (built lazily: imports torch)."""

    @staticmethod
    def wrap(classifier: Any) -> Any:
        import torch

        class Logits(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.classifier = classifier

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                return self.classifier(input_ids=input_ids, attention_mask=attention_mask)["logits"]

        return Logits().eval()


def _export_transformer(
    source: Path,
    target: Path,
    quantize: str | None,
    per_channel: bool,
    check_texts: Sequence[str],
    keep_fp32: Sequence[str] = (),
) -> dict[str, Any]:
    """Write `target` as the `onnx` family from the transformer in `source`; measure how close it scores."""
    import torch
    from tokenizers import Tokenizer

    from security_topics.models.transformer import TransformerModel

    card = ModelCard.load(source)
    # fp32 whatever the card was tuned in: the graph is traced in fp32 and quantised from it
    model = TransformerModel.load(source, card, device="cpu", precision="fp32", attn_implementation="eager")
    target.mkdir(parents=True, exist_ok=True)
    fp32_path = target / (GRAPH if not quantize else "model.fp32.onnx")
    # Two distinct tensors, one row padded: an all-ones mask (or one tensor for both) lets tracing
    # specialise the attention mask away, and the graph would ignore padding.
    input_ids = torch.full((2, 8), int(model.tokenizer.unk_token_id or 1), dtype=torch.long)
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3], dtype=torch.long)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.max_length)
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    registry_level = registry.level
    registry.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # torch's exporter's own internals
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
            torch.onnx.export(
                _Logits.wrap(model.classifier),
                (input_ids, mask),
                str(fp32_path),
                input_names=list(INPUTS),
                output_names=[OUTPUT],
                dynamic_shapes=({0: batch, 1: length}, {0: batch, 1: length}),
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as err:  # the exporter's errors are many and internal; name the model and the cause
        raise ProjectError(f"{source}: ONNX export failed ({type(err).__name__}: {err})") from err
    finally:
        registry.setLevel(registry_level)
    shutil.copy2(source / TOKENIZER, target / TOKENIZER)
    exported = ModelCard(
        family="onnx",
        labels=list(card.labels),
        thresholds=list(card.thresholds),
        normalization=dict(card.normalization),
        settings={**card.settings, "pad_token_id": int(model.tokenizer.pad_token_id or 0)},
        article_rule=dict(card.article_rule),
        calibration=dict(card.calibration),
        review=dict(card.review),
    )
    reference = model.score(check_texts).probs
    fp32_graph = OnnxModel(exported, open_session(fp32_path), Tokenizer.from_file(str(target / TOKENIZER)), target)
    fp32_diff = _max_diff(fp32_graph, check_texts, reference)
    if fp32_diff > FP32_TOLERANCE:
        raise ProjectError(f"{source}: the fp32 ONNX graph differs from torch by {fp32_diff:.2e} (> {FP32_TOLERANCE})")
    info: dict[str, Any] = {"fp32_max_abs_diff": fp32_diff, "check_sentences": len(check_texts)}
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        groups = weight_matmul_groups(fp32_path) if keep_fp32 else {}
        unknown = sorted(set(keep_fp32) - set(groups))
        if unknown:
            known = [name for name in groups if "." not in name]
            raise ConfigError(
                f"keep_fp32: unknown groups {unknown}; known: {', '.join(known)}, or one layer's role (layer0.ffn_out)"
            )
        excluded = list(dict.fromkeys(name for group in keep_fp32 for name in groups[group]))
        advice = _DropMessage("consider to run pre-processing before quantization")  # no gain measured here
        logging.getLogger().addFilter(advice)
        try:
            quantize_dynamic(
                fp32_path,
                target / GRAPH,
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded,
            )
        finally:
            logging.getLogger().removeFilter(advice)
        fp32_path.unlink()
        exported.save(target)
        info["max_abs_diff"] = _max_diff(load_model(target, num_threads=None), check_texts, reference)
    info["graph_mb"] = round((target / GRAPH).stat().st_size / 2**20, 1)
    exported.settings["export_check"] = info
    exported.save(target)
    log.info("exported %s to %s: %s", source, target, info)
    return info


ROLES = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")  # a BERT layer's weight MatMuls, in order


def weight_matmul_groups(graph_path: Path) -> dict[str, list[str]]:
    """The names of an exported encoder's weight MatMuls (second input a stored tensor), grouped by
    role across the layers (`ROLES`), by layer (`layer0` …) and one at a time (`layer0.ffn_out`): six
    per layer in graph order, then the head (a Gemm, which ONNX Runtime's quantiser renames, so it is
    not a group). Raises ProjectError where the graph is not laid out so."""
    import onnx

    graph = onnx.load(str(graph_path)).graph
    weights = {t.name: tuple(t.dims) for t in graph.initializer}
    nodes = [n for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights]
    layers, extra = divmod(len(nodes) - 1, len(ROLES))
    shapes = [weights[n.input[1]] for n in nodes]
    # the roles are read by position: check the feed-forward pair of every layer (hidden → wider → hidden)
    if (
        layers < 1
        or extra
        or any(
            shapes[i + 4][0] != shapes[i][0] or shapes[i + 4] != shapes[i + 5][::-1]
            for i in range(0, layers * len(ROLES), len(ROLES))
        )
    ):
        raise ProjectError(
            f"{graph_path}: the weight MatMuls are not laid out as a BERT encoder's; quantise it whole (keep_fp32 none)"
        )
    groups: dict[str, list[str]] = {role: [] for role in ROLES}
    for i, node in enumerate(nodes[:-1]):
        role, layer = ROLES[i % len(ROLES)], f"layer{i // len(ROLES)}"
        groups[role].append(node.name)
        groups.setdefault(layer, []).append(node.name)
        groups[f"{layer}.{role}"] = [node.name]
    return groups


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _max_diff(model: TopicModel, texts: Sequence[str], reference: np.ndarray) -> float:
    return float(np.abs(model.score(list(texts)).probs - reference).max())
