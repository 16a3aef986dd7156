"""The predictor as an MLflow pyfunc model (an MLflow "model from code": no pickling), and its logging.

Input: a DataFrame with a `text` column (each text is an article; a sentence is an article of one
sentence) and an optional `title` column. Output: one row per text with the topics, a score per
topic and the evidence as JSON.
"""

from __future__ import annotations

import json
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from security_topics.predictor import Predictor

MODEL_DIR_ARTIFACT = "model_dir"


class SecurityTopicsModel(PythonModel):
    def load_context(self, context: Any) -> None:
        self.predictor = Predictor.load(context.artifacts[MODEL_DIR_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if "text" not in model_input.columns:
            raise ValueError(f"input needs a 'text' column, got {list(model_input.columns)}")
        texts = model_input["text"].fillna("").astype(str).tolist()
        titles = model_input["title"].fillna("").astype(str).tolist() if "title" in model_input else None
        rows = []
        for result in self.predictor.predict_articles(texts, titles=titles):
            row: dict[str, Any] = {"topics": "|".join(result.labels)}
            row.update({f"score_{name}": result.scores.get(name, 0.0) for name in self.predictor.labels})
            row["evidence"] = json.dumps(
                {t.topic: [e.text for e in t.evidence] for t in result.topics}, ensure_ascii=False
            )
            row["flags"] = "|".join(result.flags)
            rows.append(row)
        return pd.DataFrame(rows)


def _requirements() -> list[str]:
    packages = (
        "mlflow",
        "torch",
        "transformers",
        "tokenizers",
        "safetensors",
        "scikit-learn",
        "scipy",
        "numpy",
        "pandas",
        "iterative-stratification",
    )
    return [f"{name}=={metadata.version(name)}" for name in packages]


def log_model(model_dir: Path, registered_name: str | None = None) -> str:
    """Log the model directory as a pyfunc wrapping the Predictor; return the model URI."""
    with warnings.catch_warnings():
        # The signature is given; an input example would make MLflow load and run the model.
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__)),
            artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
            pip_requirements=_requirements(),
            code_paths=[str(Path(__file__).parent)],  # the package travels with the model
            signature=ModelSignature(
                inputs=Schema([ColSpec("string", "text"), ColSpec("string", "title", required=False)])
            ),
            registered_model_name=registered_name or None,
        )
    return info.model_uri


mlflow.models.set_model(SecurityTopicsModel())
