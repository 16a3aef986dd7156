"""A transformer classifier exported to ONNX (`security-topics export`), scored with ONNX Runtime.

Never imports torch or transformers: the tokenizer is read with `tokenizers`, the graph (encoder,
pooling, head; fp32 or int8 weights) runs in ONNX Runtime. So a served model starts in about a second
and needs neither. The card is the source model's, with `settings.export` saying where it came from
(source checksums, opset, quantisation) and thresholds re-tuned on this model's own validation scores.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from security_topics.calibration import sigmoid
from security_topics.models.card import ModelCard, ModelDirError, Scores
from security_topics.models.runtime import default_num_threads, length_batches

log = logging.getLogger(__name__)

GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "logits"


def session_options(num_threads: int | None) -> Any:
    """One intra-op pool of `num_threads` (default: half the usable CPUs) and no spinning: idle
    threads that spin steal a shared host's cores from the threads doing the work."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads or default_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def open_session(path: Path, num_threads: int | None = None, device: str = "cpu") -> Any:
    """An ONNX Runtime session for `path`; on CUDA where asked for and available."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(num_threads), providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types for a damaged graph
        raise ModelDirError(f"{path}: not a loadable ONNX graph ({type(err).__name__}: {err})") from None


class OnnxModel:
    """Scores raw texts in length-sorted batches with an exported graph; same inputs as the torch model."""

    def __init__(self, card: ModelCard, session: Any, tokenizer: Any, directory: Path) -> None:
        self.card = card
        self.session = session
        self.directory = directory
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_length)
        self.tokenizer = tokenizer
        self.pad_id = int(card.settings.get("pad_token_id", 0))

    @property
    def max_length(self) -> int:
        return int(self.card.settings["max_length"])

    def model_inputs(self, texts: Sequence[str]) -> list[str]:
        return self.card.model_inputs(texts)

    def encode(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids cut to max_length (special tokens included), and which texts were cut."""
        encodings = self.tokenizer.encode_batch(self.model_inputs(texts))
        return [e.ids for e in encodings], np.array([bool(e.overflowing) for e in encodings], dtype=bool)

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores:
        probs = np.zeros((len(texts), len(self.card.labels)), dtype=np.float32)
        if not texts:
            return Scores(probs, np.zeros(0, dtype=bool))
        ids, truncated = self.encode(texts)
        for index in length_batches([len(x) for x in ids], batch_size):
            width = max(len(ids[i]) for i in index)
            input_ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(index), width), dtype=np.int64)
            for row, i in enumerate(index):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            (logits,) = self.session.run([OUTPUT], {"input_ids": input_ids, "attention_mask": mask})
            probs[index] = sigmoid(logits.astype(np.float32))
        return Scores(probs, truncated)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in (GRAPH, TOKENIZER):
            if (directory / name).resolve() != (self.directory / name).resolve():
                shutil.copy2(self.directory / name, directory / name)
        self.card.save(directory)

    @classmethod
    def load(
        cls,
        directory: Path,
        card: ModelCard,
        device: str = "cpu",
        precision: str | None = None,
        num_threads: int | None = None,
    ) -> OnnxModel:
        """`precision` is ignored: the graph's weights are what the export wrote (card: settings.export)."""
        for name in (GRAPH, TOKENIZER):
            if not (directory / name).is_file():
                raise ModelDirError(f"{directory / name}: missing; the exported model directory is incomplete")
        if "max_length" not in card.settings:
            raise ModelDirError(f"{directory}: the card's settings lack max_length; export the model again")
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(directory / TOKENIZER))
        except Exception as err:  # tokenizers raises a bare Exception for a damaged file
            raise ModelDirError(f"{directory / TOKENIZER}: damaged ({err})") from None
        session = open_session(directory / GRAPH, num_threads, device)
        names = {i.name for i in session.get_inputs()}
        if names != set(INPUTS):
            raise ModelDirError(f"{directory / GRAPH}: inputs {sorted(names)}, expected {list(INPUTS)}")
        outputs = {o.name: o.shape for o in session.get_outputs()}
        if OUTPUT not in outputs:
            raise ModelDirError(f"{directory / GRAPH}: outputs {sorted(outputs)}, expected {OUTPUT!r}")
        width = outputs[OUTPUT][-1] if outputs[OUTPUT] else None
        if isinstance(width, int) and width != len(card.labels):
            raise ModelDirError(
                f"{directory / GRAPH}: scores {width} topics but the card lists {len(card.labels)}: "
                "the two come from different models"
            )
        return cls(card, session, tokenizer, directory)
