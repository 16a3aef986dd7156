"""The MLflow pyfunc flavour of the predictor (an MLflow "model from code": no pickling).

Input: a DataFrame with a `text` column (each text is an article; a sentence is an article
of one sentence) and an optional `title` column. Output: one row per text with the topics,
a score per topic and the evidence as JSON.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from security_topics.predictor import Predictor
from security_topics.tracking import MODEL_DIR_ARTIFACT


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


mlflow.models.set_model(SecurityTopicsModel())
