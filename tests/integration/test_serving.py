"""`mlflow models serve` answers over HTTP on 127.0.0.1 with the Predictor's structure."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import logged_run

from security_topics.predictor import Predictor

pytestmark = pytest.mark.slow

ARTICLES = [
    {"text": "ضبطت السلطات شحنة كبتاجون في ميناء جدة. وقال المتحدث إن التحقيقات مستمرة.", "title": "ضبط كبتاجون"},
    {"text": "فاز الفريق على منافسه بهدفين نظيفين في الدوري.", "title": ""},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, payload: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_a_served_model_answers_with_topics_and_evidence_spans(tfidf_run):
    run = logged_run(tfidf_run)
    port = _free_port()
    bin_dir = str(Path(sys.executable).parent)  # the server starts uvicorn from the environment's bin
    env = {**os.environ, "MLFLOW_TRACKING_URI": tfidf_run.cfg.tracking.local_uri}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    command = [mlflow_bin, "models", "serve", "-m", f"runs:/{run.info.run_id}/model", "--env-manager", "local"]
    server = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the server did not start in 120 s"
                time.sleep(1)
        answer = _post(port, {"dataframe_records": ARTICLES})["predictions"]
        assert len(answer) == 2
        first = answer[0]
        assert "narcotics" in first["topics"] and isinstance(first["scores"], dict)
        spans = [e for e in first["evidence"] if e["topic"] == "narcotics" and e["source"] == "text"]
        assert spans and all(ARTICLES[0]["text"][e["start"] : e["end"]] == e["text"] for e in spans)
        local = Predictor.load(tfidf_run.model_dir).predict_articles(
            [a["text"] for a in ARTICLES], titles=[a["title"] for a in ARTICLES]
        )
        assert [a["topics"] for a in answer] == [list(r.labels) for r in local]
        every = _post(port, {"dataframe_records": ARTICLES, "params": {"max_evidence": 0}})["predictions"]
        assert len(every[0]["evidence"]) >= len(first["evidence"])
    finally:
        server.terminate()
        server.wait(timeout=30)
