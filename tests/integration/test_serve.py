"""`security-topics serve` on 127.0.0.1 with a real TF-IDF model: the JSON API scores good records and
names bad ones, caps what it reads, never shows a traceback; the page works in a real browser."""

import contextlib
import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import uvicorn
from helpers import fit_tfidf

from security_topics import serve as serve_module
from security_topics.predictor import Predictor
from security_topics.serve import create_app

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).parents[2] / "data" / "sample_article.txt"
NARCOTICS = "أعلنت المديرية العامة لمكافحة المخدرات ضبط شحنة كبتاجون مخبأة في شاحنة فواكه عند منفذ حدودي."


@contextlib.contextmanager
def _running(app):
    """The app under uvicorn on a free 127.0.0.1 port, in a thread; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    predictor = Predictor.load(fit_tfidf(tmp_path_factory.mktemp("tfidf")))
    with _running(create_app(predictor, "tfidf")) as url:
        yield url


def _post(url, body, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_batch_scores_the_good_records_and_names_each_bad_one(server):
    status, answer = _post(
        f"{server}/v1/articles?highlights=3",
        [
            {"id": "a1", "title": "ضبط مخدرات", "text": NARCOTICS},
            {"id": "a2", "text": 42},
            {"title": "بلا معرف", "text": "نص"},
            {"id": 7, "text": ""},
        ],
    )
    assert status == 200
    assert [r["id"] for r in answer["results"]] == ["a1", "7"]
    first = answer["results"][0]
    assert "narcotics" in first["topics"] and all(e["highlights"] for e in first["evidence"])
    assert answer["results"][1]["flags"] == ["empty"]
    assert [(e["index"], e["field"], e["status"]) for e in answer["errors"]] == [(1, "text", 422), (2, "id", 422)]
    assert "expected a string" in answer["errors"][0]["reason"]


def test_a_batch_of_only_bad_records_is_422_and_bad_json_is_400(server):
    status, answer = _post(f"{server}/v1/articles", [{"id": "x"}])
    assert status == 422 and answer["results"] == [] and answer["errors"][0]["field"] == "text"
    status, answer = _post(f"{server}/v1/articles", b"[{not json", "application/json")
    assert status == 400 and "not JSON" in answer["error"]
    status, answer = _post(f"{server}/v1/articles", {"id": "x", "text": "نص"})
    assert status == 400 and "JSON list" in answer["error"]
    deep = ("[" * 200_000 + "]" * 200_000).encode()  # a RecursionError in Python's parser, not a JSONDecodeError
    for path in ("articles", "explain"):
        status, answer = _post(f"{server}/v1/{path}", deep, "application/json")
        assert (status, answer["error"]) == (400, "the body is not JSON: nested too deeply")
    status, answer = _post(f"{server}/v1/articles.jsonl", b'{"id": "a", "text": ' + deep + b"}", "application/x-ndjson")
    assert status == 422 and answer["errors"][0]["reason"] == "invalid JSON: nested too deeply"


def test_a_jsonl_upload_names_the_bad_line(server):
    body = "\n".join([json.dumps({"id": "ok", "text": NARCOTICS}, ensure_ascii=False), "{broken", ""]).encode()
    status, answer = _post(f"{server}/v1/articles.jsonl", body, "application/x-ndjson")
    assert status == 200 and [r["id"] for r in answer["results"]] == ["ok"]
    assert [(e["line"], e["field"]) for e in answer["errors"]] == [(2, "json")]


def test_requests_over_the_caps_are_refused_and_errors_carry_no_traceback(server, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(serve_module, "MAX_BODY_BYTES", 4096)  # a small cap: the refused body fits a socket buffer
        status, answer = _post(f"{server}/v1/articles", b" " * 5000)
    assert status == 413 and answer == {"error": "request body over 4096 bytes"}
    status, answer = _post(
        f"{server}/v1/articles", [{"id": i, "text": "نص"} for i in range(serve_module.MAX_ARTICLES + 1)]
    )
    assert status == 413 and "at most" in answer["error"]
    status, answer = _post(f"{server}/v1/explain", {"text": "ن" * (serve_module.MAX_TEXT_CHARS + 1)})
    assert status == 413


def test_an_internal_error_is_a_plain_500(tmp_path):
    class Broken:
        labels = ["a"]

        def predict_each(self, *args, **kwargs):
            raise RuntimeError("secret internals at /home/x")

    with _running(create_app(Broken(), "broken")) as url:
        status, answer = _post(f"{url}/v1/articles", [{"id": "a", "text": "نص"}])
    assert status == 500 and answer == {"error": "internal error: the server logged it"}


def test_a_record_the_model_fails_on_costs_only_itself_and_never_the_server(server, monkeypatch):
    from helpers import BREAKS_THE_TOKENIZER, panic_on_marked_texts

    panic_on_marked_texts(monkeypatch)  # a Rust panic: a BaseException, not an Exception
    broken = f"{NARCOTICS} {BREAKS_THE_TOKENIZER}"
    status, answer = _post(
        f"{server}/v1/articles", [{"id": "a", "text": NARCOTICS}, {"id": "b", "text": broken}, {"id": "c", "text": 5}]
    )
    assert status == 200 and [r["id"] for r in answer["results"]] == ["a"]
    assert [(e["index"], e["id"], e["status"]) for e in answer["errors"]] == [(1, "b", 500), (2, "c", 422)]
    assert answer["errors"][0]["reason"] == serve_module.FAILED  # no internals
    status, answer = _post(f"{server}/v1/articles", [{"id": "b", "text": broken}])
    assert status == 500 and answer["results"] == []
    status, answer = _post(f"{server}/v1/explain", {"text": broken})
    assert (status, answer) == (500, {"error": serve_module.FAILED})
    status, answer = _post(f"{server}/v1/articles", [{"id": "a", "text": NARCOTICS}])  # the server lives on
    assert status == 200 and "narcotics" in answer["results"][0]["topics"]


def test_explain_gives_the_marked_section(server):
    status, answer = _post(f"{server}/v1/explain", {"title": "", "text": NARCOTICS})
    assert status == 200 and "narcotics" in answer["result"]["topics"]
    assert 'class="evidence"' in answer["html"] and "<mark" in answer["html"]


def _browser():
    """Headless Chromium under Selenium with Debian's chromium and chromedriver (no driver download)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no chromium/chromedriver on PATH (make test installs them with apt where it can)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,1400",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_an_analyst_pastes_an_article_and_sees_its_topics_and_words(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(server + "/")
        browser.find_element(By.ID, "text").send_keys(SAMPLE.read_text(encoding="utf-8"))
        browser.find_element(By.ID, "explain").click()
        WebDriverWait(browser, 30).until(ready.visibility_of_element_located((By.CSS_SELECTOR, "#result .topic")))
        topics = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#result .topic b")]
        marks = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#result mark") if m.is_displayed()]
        browser.save_screenshot(str(tmp_path / "serve.png"))
    finally:
        browser.quit()
    assert "sports_security" in topics  # the sample: security for the Arab Cup in Doha
    assert marks and all(word.strip() for word in marks)
    assert (tmp_path / "serve.png").stat().st_size > 10_000
