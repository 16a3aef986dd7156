"""The Spark engine on `local[2]`: exactly the Predictor's labels, the local engine's rows and errors."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FIXTURES, fit_tfidf

from security_topics.predictor import Predictor
from security_topics.scoring import read_errors, read_output, score_local

pytestmark = pytest.mark.slow
pytest.importorskip("pyspark")


def test_spark_local2_gives_the_predictors_labels_and_the_local_engines_rows(tmp_path):
    if shutil.which("java") is None:
        pytest.skip("the spark engine needs Java 17+ on PATH")
    from security_topics.scoring_spark import score_spark

    model = str(fit_tfidf(tmp_path / "model"))
    fixture = [json.loads(line) for line in (FIXTURES / "articles.jsonl").read_text().splitlines() if line.strip()]
    articles = [{**a, "id": f"{a['id']}-{copy}"} for copy in range(2) for a in fixture]  # 52 articles
    (tmp_path / "in").mkdir()
    lines = [json.dumps(a, ensure_ascii=False) for a in articles[:30]]
    lines[7:7] = ["{not json", json.dumps({"id": "no-text"}), json.dumps({**articles[0], "title": 5})]
    (tmp_path / "in" / "a.jsonl").write_text("\n".join(lines) + "\n")
    parquet = [*articles[30:], {**articles[3], "text": "مكرر"}]  # a duplicate id, in the second file
    pq.write_table(pa.Table.from_pylist(parquet), tmp_path / "in" / "b.parquet", row_group_size=8)

    (tmp_path / "spark.parquet").mkdir()  # an empty OUTPUT folder is taken, as Spark itself would not
    stages = []
    summary = score_spark(
        model, tmp_path / "in", tmp_path / "spark.parquet", master="local[2]", batch_size=8, on_stage=stages.append
    )
    score_local(model, tmp_path / "in", tmp_path / "local.parquet", batch_size=8)

    spark_rows = {r["id"]: r for r in read_output(tmp_path / "spark.parquet")}
    local_rows = {r["id"]: r for r in read_output(tmp_path / "local.parquet")}
    expected = Predictor.load(model).predict_articles([a["text"] for a in articles], [a["title"] for a in articles])
    assert summary.scored == len(spark_rows) == len(articles) == 52
    assert stages[0] == "starting Spark on local[2]" and stages[1].startswith("reading and checking 2 files (")
    assert stages[2].startswith("scoring 52 articles in ") and stages[3].endswith("writing 4 error rows")
    assert {a["id"]: list(r.labels) for a, r in zip(articles, expected)} == {
        i: r["topics"] for i, r in spark_rows.items()
    }
    assert spark_rows == local_rows  # every field, scores and evidence included
    errors = [(e["source"].rsplit("/", 1)[1], e["line"], e["field"]) for e in read_errors(tmp_path / "spark.parquet")]
    assert errors == [("a.jsonl", 8, "json"), ("a.jsonl", 9, "text"), ("a.jsonl", 10, "title"), ("b.parquet", 23, "id")]
    assert read_errors(tmp_path / "spark.parquet") == read_errors(tmp_path / "local.parquet")
