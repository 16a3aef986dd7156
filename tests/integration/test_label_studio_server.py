"""The Label Studio round trip against a real Label Studio: suggest -> tasks -> annotate -> export -> import-labels.

Label Studio lives in its own virtual environment (its pins clash with ours): `make test` creates
`.venv-label-studio` (LABEL_STUDIO_BIN points elsewhere). Without it the test is skipped, saying why.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import FIXTURES, ROOT, TOPICS, fit_tfidf

from security_topics.data import read_sentences
from security_topics.labels import LabelSet

pytestmark = pytest.mark.slow

TOKEN = "0123456789abcdef0123456789abcdef01234567"
BIN = Path(os.environ.get("LABEL_STUDIO_BIN", ROOT / ".venv-label-studio" / "bin" / "label-studio"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    if not BIN.is_file():
        pytest.skip(f"Label Studio is not installed at {BIN} (make test installs it; set LABEL_STUDIO_BIN)")
    data, port = tmp_path_factory.mktemp("label-studio"), _free_port()
    env = {**os.environ, "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true"}
    server = subprocess.Popen(
        [str(BIN), "start", "--no-browser", "--port", str(port), "--internal-host", "127.0.0.1",
         "--host", f"http://127.0.0.1:{port}", "--data-dir", str(data), "--username", "annotator@example.org",
         "--password", "not-a-secret-1", "--user-token", TOKEN, "--enable-legacy-api-token"],
        env=env, stdout=(data / "server.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            if server.poll() is not None:
                pytest.fail(f"Label Studio exited: {(data / 'server.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/version", timeout=2)
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("Label Studio did not answer within 180 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _call(url: str, method: str, path: str, body=None):
    request = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body, ensure_ascii=False).encode(),
        headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        text = response.read()
    return json.loads(text) if text else None


def test_suggested_tasks_go_through_label_studio_and_come_back_as_the_gold_rows(label_studio, tmp_path):
    labels = LabelSet.of(TOPICS)
    gold = read_sentences(FIXTURES / "sentences.csv", labels)[:300]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": e.id, "text": e.text}, ensure_ascii=False) + "\n" for e in gold))
    model = fit_tfidf(tmp_path / "tfidf")
    out = tmp_path / "suggested"
    cli = [sys.executable, "-m", "security_topics.cli"]
    subprocess.run(
        [*cli, "suggest", str(pool), "--model", str(model), "-n", "12", "--unit", "sentence", "--output", str(out),
         "--labelled"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    tasks = json.loads((out / "tasks.json").read_text())
    assert len(tasks) == 12 and all(t["predictions"][0]["model_version"] for t in tasks)

    project = _call(
        label_studio,
        "POST",
        "/api/projects",
        {"title": "security topics", "label_config": (out / "label_config.xml").read_text()},
    )
    imported = _call(label_studio, "POST", f"/api/projects/{project['id']}/import", tasks)
    assert imported["task_count"] == 12 and imported["prediction_count"] == 12
    by_text = {e.text: e for e in gold}
    listed = _call(label_studio, "GET", f"/api/tasks?project={project['id']}&page_size=100")
    for task in listed["tasks"] if isinstance(listed, dict) else listed:
        answer = list(by_text[task["data"]["text"]].labels) or ["none"]  # the annotator knows the gold labels
        result = [{"from_name": "topics", "to_name": "text", "type": "choices", "value": {"choices": answer}}]
        _call(label_studio, "POST", f"/api/tasks/{task['id']}/annotations", {"result": result})
    export = _call(label_studio, "GET", f"/api/projects/{project['id']}/export?exportType=JSON")
    (tmp_path / "export.json").write_text(json.dumps(export, ensure_ascii=False))

    corpus = tmp_path / "corpus.csv"
    done = subprocess.run(
        [*cli, "import-labels", str(tmp_path / "export.json"), "--output", str(corpus), "--corpus",
         "--labels", *TOPICS],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "imported 12 rows" in done.stdout
    rows = read_sentences(corpus, labels)
    suggested = {t["data"]["text"] for t in tasks}
    assert {r.text for r in rows} == suggested
    assert all(set(r.labels) == set(by_text[r.text].labels) for r in rows)  # the gold labels, back
    assert all(r.meta["annotator"] and r.meta["annotated_at"] for r in rows)
    again = subprocess.run(
        [*cli, "import-labels", str(tmp_path / "export.json"), "--output", str(corpus), "--corpus",
         "--labels", *TOPICS],
        capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 1 and "already labelled at" in again.stderr  # duplicates are refused
