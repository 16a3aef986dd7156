"""The Spark engine on `local[2]`: exactly the Predictor's labels, the local engine's rows and errors."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import BREAKS_THE_TOKENIZER, FIXTURES, fit_tfidf, panic_on_marked_texts

from security_topics.predictor import Predictor
from security_topics.scoring import read_errors, read_output, score_local

pytestmark = pytest.mark.slow
pytest.importorskip("pyspark")

SITECUSTOMIZE = """
from security_topics.predictor import Predictor


class PanicException(BaseException):
    pass


def _panicking(self, texts, *args, _scored=Predictor.predict_articles, **kwargs):
    if any("{mark}" in (text or "") for text in texts):
        raise PanicException("regex panicked")
    return _scored(self, texts, *args, **kwargs)


Predictor.predict_articles = _panicking
"""


def test_spark_local2_gives_the_predictors_labels_and_the_local_engines_rows(tmp_path, monkeypatch):
    if shutil.which("java") is None:
        pytest.skip("the spark engine needs Java 17+ on PATH")
    from security_topics.scoring_spark import score_spark

    model = str(fit_tfidf(tmp_path / "model"))
    # Spark's Python workers start with this folder on their path: its sitecustomize makes the
    # Predictor panic on one marked article, as a hostile tokenizer would, in every worker
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE.format(mark=BREAKS_THE_TOKENIZER))
    fixture = [json.loads(line) for line in (FIXTURES / "articles.jsonl").read_text().splitlines() if line.strip()]
    articles = [{**a, "id": f"{a['id']}-{copy}"} for copy in range(2) for a in fixture]  # 52 articles
    (tmp_path / "in").mkdir()
    lines = [json.dumps(a, ensure_ascii=False) for a in articles[:30]]
    lines[7:7] = ["{not json", json.dumps({"id": "no-text"}), json.dumps({**articles[0], "title": 5})]
    lines.append(json.dumps({"id": "boom", "text": f"نص {BREAKS_THE_TOKENIZER} المرمّز."}, ensure_ascii=False))
    (tmp_path / "in" / "a.jsonl").write_text("\n".join(lines) + "\n")
    parquet = [*articles[30:], {**articles[3], "text": "مكرر"}]  # a duplicate id, in the second file
    pq.write_table(pa.Table.from_pylist(parquet), tmp_path / "in" / "b.parquet", row_group_size=8)

    (tmp_path / "spark.parquet").mkdir()  # an empty OUTPUT folder is taken, as Spark itself would not
    stages = []
    conf = {"spark.executorEnv.PYTHONPATH": str(tmp_path / "site")}
    options = {"master": "local[2]", "batch_size": 8, "on_stage": stages.append, "conf": conf}
    summary = score_spark(model, tmp_path / "in", tmp_path / "spark.parquet", **options)
    expected = Predictor.load(model).predict_articles([a["text"] for a in articles], [a["title"] for a in articles])
    panic_on_marked_texts(monkeypatch)
    score_local(model, tmp_path / "in", tmp_path / "local.parquet", batch_size=8)

    spark_rows = {r["id"]: r for r in read_output(tmp_path / "spark.parquet")}
    local_rows = {r["id"]: r for r in read_output(tmp_path / "local.parquet")}
    assert summary.scored == len(spark_rows) == len(articles) == 52
    assert stages[0] == "starting Spark on local[2]" and stages[1].startswith("reading and checking 2 files (")
    assert stages[2].startswith("scoring 53 articles in ") and stages[3].endswith("writing 5 error rows")
    assert {a["id"]: list(r.labels) for a, r in zip(articles, expected)} == {
        i: r["topics"] for i, r in spark_rows.items()
    }
    assert spark_rows == local_rows  # every field, scores and evidence included
    errors = [(e["source"].rsplit("/", 1)[1], e["line"], e["field"]) for e in read_errors(tmp_path / "spark.parquet")]
    assert errors == [
        ("a.jsonl", 8, "json"),
        ("a.jsonl", 9, "text"),
        ("a.jsonl", 10, "title"),
        ("a.jsonl", 34, "text"),  # the record that broke the model on an executor cost only itself
        ("b.parquet", 23, "id"),
    ]
    assert read_errors(tmp_path / "spark.parquet")[3]["reason"] == "scoring failed: PanicException: regex panicked"
    assert read_errors(tmp_path / "spark.parquet") == read_errors(tmp_path / "local.parquet")
