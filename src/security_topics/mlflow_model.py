"""The predictor as an MLflow pyfunc model (an MLflow "model from code": no pickling), and its logging.

Input: a DataFrame with a `text` column (each text is an article; a sentence is an article of one
sentence) and an optional `title` column; params `max_evidence` (0 = every carrying sentence) and
`review_target` (one of the model's review bands; 0 = the model's own).
Output: one row per text in the Predictor's structure: `topics` (a list), `scores` (topic → calibrated
score), `evidence` (a list of {topic, text, start, end, score, source}), `flags` (a list) and
`needs_review` (the topics in the review band). Request options never change the shared Predictor.
"""

from __future__ import annotations

import math
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from security_topics.models.card import ModelCard
from security_topics.models.ensemble import MEMBERS
from security_topics.predictor import Predictor
from security_topics.text import MAX_ARTICLE_CHARS

MODEL_DIR_ARTIFACT = "model_dir"
DEFAULT_MAX_EVIDENCE = 3
OUTPUT_COLUMNS = ["topics", "scores", "evidence", "flags", "needs_review"]


class SecurityTopicsModel(PythonModel):
    def load_context(self, context: Any) -> None:
        self.predictor = Predictor.load(context.artifacts[MODEL_DIR_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One row per text; a text over `max_chars` is not scored (flag `too_long`). A text or title
        that is not a string, or a bad param, is an error naming it (HTTP 400 when served)."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        if "text" not in model_input.columns:
            raise MlflowException(
                f"input needs a 'text' column, got {list(model_input.columns)}", INVALID_PARAMETER_VALUE
            )
        params = params or {}
        try:
            texts = _strings(model_input["text"], "text")
            titles = _strings(model_input["title"], "title") if "title" in model_input else [None] * len(texts)
            max_chars = int(params.get("max_chars", MAX_ARTICLE_CHARS))
            keep = [i for i, text in enumerate(texts) if len(text) <= max_chars]
            options = {
                "max_evidence": int(params.get("max_evidence", DEFAULT_MAX_EVIDENCE)) or None,
                "review_target": float(params.get("review_target") or 0) or None,
                "highlights": bool(params.get("highlights", False)),
            }
            scored = self._rows([texts[i] for i in keep], [titles[i] for i in keep], options)
        except (ValueError, TypeError) as err:  # ConfigError is a ValueError: a bad param or row
            raise MlflowException(str(err), INVALID_PARAMETER_VALUE) from None
        rows = [_flagged(TOO_LONG) for _ in texts]
        for i, row in zip(keep, scored):
            rows[i] = row
        return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)

    def _rows(self, texts: list[str], titles: list[str | None], options: dict[str, Any]) -> list[dict[str, Any]]:
        """Result rows, where a text that breaks the model (a tokenizer's panic) is a row flagged
        `failed` and costs only itself; a bad param (ValueError, TypeError) is raised."""
        results = self.predictor.predict_each(texts, titles, propagate=(ValueError, TypeError), **options)
        return [_flagged(FAILED) if isinstance(r, BaseException) else r.to_row() for r in results]


TOO_LONG = "too_long"  # a text over the max_chars param: not scored
FAILED = "failed"  # a text the model could not score (its error is the server's log)


def _flagged(flag: str) -> dict[str, Any]:
    return {"topics": [], "scores": {}, "evidence": [], "flags": [flag], "needs_review": []}


def _strings(column: pd.Series, name: str) -> list[str | None]:
    """A column of texts: strings, with missing values as empty (None for titles); anything else is
    an error naming the row, never a number turned into text."""
    values: list[str | None] = []
    for row, value in enumerate(column.tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            values.append("" if name == "text" else None)
        elif isinstance(value, str):
            values.append(value)
        else:
            raise TypeError(f"row {row}: '{name}' must be a string, got {type(value).__name__}")
    return values


_COMMON = ("mlflow", "safetensors", "scikit-learn", "scipy", "numpy", "pandas", "iterative-stratification")
_TORCH = ("torch", "transformers", "tokenizers")
_ONNX = ("onnxruntime", "tokenizers")  # an exported model (`security-topics export`) serves without torch


def requirements(model_dir: Path) -> list[str]:
    """Pinned requirements that install elsewhere: no local build tags (`+cpu`), and torch with
    transformers (or ONNX Runtime) only for the families that need them (not for a TF-IDF model)."""
    families = _families(model_dir)
    packages = _COMMON + (_TORCH if "transformer" in families else ()) + (_ONNX if "onnx" in families else ())
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in dict.fromkeys(packages)]


def _families(model_dir: Path) -> set[str]:
    """The model families in a model directory, an ensemble's members included."""
    card = ModelCard.load(model_dir)
    if card.family == "ensemble":
        return set().union(*(_families(model_dir / MEMBERS / name) for name in card.settings["members"]))
    return {card.family}


def log_model(model_dir: Path, registered_name: str | None = None) -> str:
    """Log the model directory as a pyfunc wrapping the Predictor; return the model URI."""
    with warnings.catch_warnings():
        # The signature is given; an input example would make MLflow load and run the model.
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__)),
            artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
            pip_requirements=requirements(Path(model_dir)),
            code_paths=[str(Path(__file__).parent)],  # the package travels with the model
            signature=ModelSignature(
                inputs=Schema([ColSpec("string", "text"), ColSpec("string", "title", required=False)]),
                params=ParamSchema(
                    [
                        ParamSpec("max_evidence", "long", DEFAULT_MAX_EVIDENCE),
                        ParamSpec("review_target", "double", 0.0),
                        ParamSpec("highlights", "boolean", False),
                        ParamSpec("max_chars", "long", MAX_ARTICLE_CHARS),
                    ]
                ),
            ),
            registered_model_name=registered_name or None,
        )
    return info.model_uri


mlflow.models.set_model(SecurityTopicsModel())
