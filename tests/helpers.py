"""Shared test helpers: composed configs, training runs, a fake model with fixed scores, damaged cards."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from security_topics.models.card import ModelCard, Scores

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
# The test corpus in place of the project's, as overrides of any entry point.
FIXTURE_DATA = (
    "data=fixture",
    f"data.sentences={FIXTURES / 'sentences.csv'}",
    f"data.articles={FIXTURES / 'articles.jsonl'}",
    f"data.real.sentences={FIXTURES / 'real_sentences.csv'}",
    f"data.real.articles={FIXTURES / 'real_articles.jsonl'}",
    f"data.real.sides={FIXTURES / 'real_article_sides.csv'}",
)


def compose_config(name: str, workspace: Path, *overrides: str) -> DictConfig:
    """A config as Hydra composes it, pointed at a temporary workspace and the test fixture."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(
            name,
            overrides=[
                f"paths.root_dir={workspace}",
                *FIXTURE_DATA,
                f"output_dir={workspace / 'out'}",  # ${hydra:runtime.output_dir} exists only in a Hydra run
                *overrides,
            ],
        )


def compose_train(workspace: Path, *overrides: str) -> DictConfig:
    return compose_config("train", workspace, *overrides)


@dataclass
class Run:
    cfg: DictConfig
    metrics: dict
    dir: Path

    @property
    def model_dir(self) -> str:
        return str(self.dir / "model")


def logged_run(run: Run):
    """The MLflow run of a test's training run (run names are `<model>-<run dir name>`); points MLflow
    at the run's store (conftest unsets MLFLOW_TRACKING_URI after each test)."""
    import mlflow

    mlflow.set_tracking_uri(run.cfg.tracking.local_uri)
    found = mlflow.search_runs(
        experiment_names=[run.cfg.tracking.experiment],
        filter_string=f"attributes.run_name = '{run.cfg.model.name}-{run.dir.name}'",
        output_format="list",
    )
    assert len(found) == 1
    return found[0]


def train_run(workspace: Path, name: str, *overrides: str) -> Run:
    from security_topics.train import train

    run_dir = workspace / "runs" / name
    cfg = compose_train(workspace, f"output_dir={run_dir}", *overrides)
    return Run(cfg, train(cfg), run_dir)


class FakeModel:
    """A `TopicModel` whose score for a text is looked up in a table (unknown texts score 0)."""

    def __init__(
        self,
        table: dict[str, Sequence[float]],
        labels: Sequence[str] = ("a", "b"),
        thresholds: Sequence[float] = (0.5, 0.5),
        article_rule: dict | None = None,
        truncated: Sequence[str] = (),
    ) -> None:
        self.table = {k: np.asarray(v, dtype=np.float64) for k, v in table.items()}
        self.card = ModelCard("fake", list(labels), list(thresholds), {}, article_rule=article_rule or {})
        self.truncated = set(truncated)
        self.calls: list[list[str]] = []

    def score(self, texts: Sequence[str], batch_size: int = 64) -> Scores:
        self.calls.append(list(texts))
        zeros = np.zeros(len(self.card.labels))
        probs = np.array([self.table.get(t, zeros) for t in texts]).reshape(len(texts), len(self.card.labels))
        return Scores(probs, np.array([t in self.truncated for t in texts], dtype=bool))

    def save(self, directory: Path) -> None:
        self.card.save(directory)


CUES = {"المخدرات": (1, 0.6), "كبتاجون": (1, 0.3), "إرهابية": (0, 0.7)}


class KeywordModel:
    """A `TopicModel` that scores a text by the cue words it holds: topic a (terrorism), b (narcotics),
    base 0.1; for what depends on which words carry a score (highlights)."""

    def __init__(self) -> None:
        self.card = ModelCard("fake", ["a", "b"], [0.5, 0.5], {})
        self.calls: list[list[str]] = []

    def score(self, texts, batch_size=64):
        self.calls.append(list(texts))
        probs = np.full((len(texts), 2), 0.1)
        for i, text in enumerate(texts):
            for word, (topic, weight) in CUES.items():
                if word in text.split():
                    probs[i, topic] += weight
        return Scores(np.clip(probs, 0, 1), np.zeros(len(texts), dtype=bool))

    def save(self, directory):
        self.card.save(directory)


TOPICS = ("counterterrorism", "narcotics", "cybersecurity", "aviation", "sports_security")


def fit_tfidf(directory: Path) -> Path:
    """A TF-IDF model fitted on the fixture sentences and saved, without the training pipeline
    (no MLflow, no Hydra): a real model in about a second, for tests of what uses a model."""
    from security_topics.data import read_sentences
    from security_topics.labels import LabelSet
    from security_topics.recipes.tfidf import TfidfRecipe

    labels = LabelSet.of(TOPICS)
    model = TfidfRecipe(max_features=5000).fit(read_sentences(FIXTURES / "sentences.csv", labels), [], labels)
    model.save(directory)
    return directory


class PanicException(BaseException):
    """As pyo3 raises a Rust panic (a tokenizer's normaliser regex): a BaseException, not an Exception."""


BREAKS_THE_TOKENIZER = "يكسر"  # a word in a text that the patched Predictor panics on


def panic_on_marked_texts(monkeypatch) -> None:
    """Patch Predictor.predict_articles to panic on any batch holding BREAKS_THE_TOKENIZER."""
    from security_topics.predictor import Predictor

    real = Predictor.predict_articles

    def panicking(self, texts, *args, **kwargs):
        if any(BREAKS_THE_TOKENIZER in t for t in texts):
            raise PanicException("regex panicked")
        return real(self, texts, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict_articles", panicking)


def drop_labels(card_path: Path, keep: int = 3) -> None:
    """A card that is sound on its own (every per-topic list cut to `keep` topics) but no longer fits the weights."""
    card = json.loads(card_path.read_text())
    topics = len(card["labels"])

    def cut(value):
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, list):
            return [cut(v) for v in (value[:keep] if len(value) == topics else value)]
        return value

    card_path.write_text(json.dumps(cut(card)))
