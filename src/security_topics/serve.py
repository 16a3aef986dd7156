"""`security-topics serve`: a page where an analyst pastes an article and sees the explain view, or
uploads a JSONL file and gets a table and a download of the scored rows; and a JSON API.

API (OpenAPI docs at /docs):
- `POST /v1/articles`: a JSON list of `{id, title?, text}` → `{"results": [{id, ...to_row}],
  "errors": [{index, id, field, reason, status}]}`. Each bad record gets its own error (status 422),
  a record the model fails on (a tokenizer's panic) one with status 500 and no internals, and the
  others are scored all the same; the response is 200 when any record was scored, else its errors'
  worst status.
- `POST /v1/articles.jsonl`: the same for a JSONL body (errors name the line).
- `POST /v1/explain`: `{title?, text}` → `{"html": the article's section, "result": to_row}`.
- `GET /healthz`: the model's name and labels.
Requests over MAX_BODY_BYTES (or MAX_ARTICLES records) get 413; errors never carry a traceback (the
server logs it). One model call runs at a time: scoring is CPU-bound, and interleaved calls would
only share the same cores.
"""

from __future__ import annotations

import json
import logging
import threading
from html import escape
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware

from security_topics.errors import JSON_ERRORS, ConfigError, json_problem
from security_topics.explain import STYLE, render_article
from security_topics.highlights import HIGHLIGHT_WORDS
from security_topics.predictor import Predictor
from security_topics.scoring import BadRow, check_record, parse_jsonl_line

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_ARTICLES = 500
MAX_TEXT_CHARS = 200_000  # one pasted or posted article


class _BodyLimit(BaseHTTPMiddleware):
    """413 before reading a body whose declared length is over the cap."""

    async def dispatch(self, request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"error": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        return await call_next(request)


FAILED = "scoring failed: the model could not score this text (the server logged why)"


def create_app(predictor: Predictor, model_name: str = "model") -> FastAPI:
    app = FastAPI(
        title="security-topics",
        description="Security topics in Arabic news: labels, scores and the evidence sentences behind them.",
    )
    app.add_middleware(_BodyLimit)
    lock = threading.Lock()

    def score(rows: list[Any], highlights: int = 0, **options: Any) -> list[Any]:
        """Each row's result, or in its place the exception that scoring it raised (a tokenizer's
        Rust panic is a BaseException: it must cost one record, never the server)."""
        with lock:
            results = predictor.predict_each(
                [r.text for r in rows],
                [r.title for r in rows],
                highlights=highlights,
                propagate=(ConfigError,),
                **options,
            )
        for row, result in zip(rows, results):
            if isinstance(result, BaseException):
                log.error("scoring record %r failed", row.id, exc_info=result)
        return results

    async def body(request: Request) -> bytes:
        data = await request.body()
        if len(data) > MAX_BODY_BYTES:  # a chunked body declares no length
            raise _Refused(413, f"request body over {MAX_BODY_BYTES} bytes")
        return data

    async def json_body(request: Request) -> Any:
        """The request's body as JSON, or a 400 saying why it is not."""
        try:
            return json.loads(await body(request))
        except UnicodeDecodeError as err:
            raise _Refused(400, f"the body is not UTF-8 ({err})") from None
        except JSON_ERRORS as err:
            raise _Refused(400, f"the body is not JSON: {json_problem(err)}") from None

    def answer(records: list[Any], highlights: int) -> JSONResponse:
        if len(records) > MAX_ARTICLES:
            raise _Refused(413, f"{len(records)} articles in one request; send at most {MAX_ARTICLES}")
        if not 0 <= highlights <= 50:
            raise _Refused(422, f"highlights: a number of words from 0 to 50, got {highlights}")
        good, errors = [], []
        for i, r in enumerate(records):
            if isinstance(r, BadRow):
                errors.append({"index": i, "id": r.id, "line": r.line, "field": r.field, "reason": r.reason})
            elif len(r.text) > MAX_TEXT_CHARS:
                reason = f"{len(r.text)} characters; an article may have at most {MAX_TEXT_CHARS}"
                errors.append({"index": i, "id": r.id, "line": r.line, "field": "text", "reason": reason})
            else:
                good.append((i, r))
        errors = [{**e, "status": 422} for e in errors]
        results = []
        scored = score([r for _, r in good], highlights) if good else []
        for (i, r), res in zip(good, scored):
            if isinstance(res, BaseException):
                errors.append(
                    {"index": i, "id": r.id, "line": r.line, "field": "text", "reason": FAILED, "status": 500}
                )
            else:
                results.append({"id": r.id, **res.to_row()})
        errors.sort(key=lambda e: e["index"])
        status = 200 if results or not errors else max(e["status"] for e in errors)
        return JSONResponse({"results": results, "errors": errors}, status_code=status)

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "internal error: the server logged it"}, status_code=500)

    @app.exception_handler(_Refused)
    async def _refused(request: Request, err: _Refused) -> JSONResponse:
        return JSONResponse({"error": err.reason}, status_code=err.status)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return _INDEX.replace("{{STYLE}}", STYLE).replace("{{MODEL}}", escape(model_name))

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        return {"model": model_name, "labels": list(predictor.labels)}

    @app.post(
        "/v1/articles",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "text"],
                                "properties": {
                                    "id": {"type": ["string", "integer"]},
                                    "title": {"type": ["string", "null"]},
                                    "text": {"type": "string"},
                                },
                            },
                        }
                    }
                },
            }
        },
    )
    async def articles(request: Request, highlights: int = 0) -> JSONResponse:
        """Label a batch of articles: one result per good record, one error per bad one.
        `?highlights=N` marks the N words that carried each evidence sentence's topic."""
        payload = await json_body(request)
        if not isinstance(payload, list):
            return JSONResponse({"error": "expected a JSON list of {id, title, text} objects"}, status_code=400)
        return answer([check_record(obj, "request", i + 1) for i, obj in enumerate(payload)], highlights)

    @app.post("/v1/articles.jsonl")
    async def articles_jsonl(request: Request, highlights: int = 0) -> JSONResponse:
        """The same for a JSONL body (one {id, title, text} per line); errors name the line."""
        data = await body(request)
        records = [parse_jsonl_line(raw.rstrip(b"\r"), "upload", n) for n, raw in enumerate(data.split(b"\n"), 1)]
        return answer([r for r in records if r is not None], highlights)

    @app.post("/v1/explain")
    async def explain(request: Request) -> JSONResponse:
        """One article's explain view (an HTML section) and its result row."""
        payload = await json_body(request)
        record = check_record({"id": "explain", **payload} if isinstance(payload, dict) else payload, "request", 1)
        if isinstance(record, BadRow):
            return JSONResponse({"error": f"{record.field}: {record.reason}"}, status_code=422)
        if len(record.text) > MAX_TEXT_CHARS:
            return JSONResponse({"error": f"text: at most {MAX_TEXT_CHARS} characters"}, status_code=413)
        (result,) = score([record], highlights=HIGHLIGHT_WORDS, max_evidence=0)  # every carrying sentence
        if isinstance(result, BaseException):
            raise _Refused(500, FAILED)
        html = render_article(result, record.text, record.title, list(predictor.labels))
        return JSONResponse({"html": html, "result": result.to_row()})

    return app


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


# The page: no network, no CDN; the article view comes from /v1/explain, the table from /v1/articles.jsonl.
_INDEX = """<!doctype html>
<html dir="rtl" lang="ar">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>security-topics</title>
<style>{{STYLE}}
form, .upload { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 1rem 1.25rem;
                margin-bottom: 1rem; }
input[type=text], textarea { width: 100%; box-sizing: border-box; font: inherit; padding: .4rem; }
textarea { min-height: 12rem; }
button { font: inherit; padding: .35rem 1.2rem; margin-top: .5rem; }
.error { color: #a00; }
header { color: #555; font-size: .9rem; margin-bottom: 1rem; }
</style>
</head>
<body>
<main>
<header>security-topics · model <code dir="ltr">{{MODEL}}</code> · <a href="/docs" dir="ltr">API</a></header>
<form id="paste">
  <label>العنوان (اختياري)<input type="text" id="title" name="title"></label>
  <label>نص الخبر<textarea id="text" name="text" required></textarea></label>
  <button type="submit" id="explain">حلّل</button>
  <span id="status" class="error"></span>
</form>
<div id="result"></div>
<div class="upload">
  <label>ملف JSONL (سطر لكل خبر: id و title و text) <input type="file" id="file" accept=".jsonl,.json,.txt"></label>
  <div id="table"></div>
</div>
</main>
<script>
const status = document.getElementById("status");
document.getElementById("paste").addEventListener("submit", async (event) => {
  event.preventDefault();
  status.textContent = "…";
  const response = await fetch("/v1/explain", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({title: document.getElementById("title").value,
                          text: document.getElementById("text").value})});
  const answer = await response.json();
  if (!response.ok) { status.textContent = answer.error; return; }
  status.textContent = "";
  document.getElementById("result").innerHTML = answer.html;
});
document.getElementById("file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  const table = document.getElementById("table");
  if (!file) return;
  const response = await fetch("/v1/articles.jsonl", {method: "POST", body: await file.text()});
  const answer = await response.json();
  if (answer.error) { table.innerHTML = ""; table.append(Object.assign(document.createElement("p"),
    {className: "error", textContent: answer.error})); return; }
  const rows = answer.results.map(r => [r.id, r.topics.join("، "), r.needs_review.join("، "), r.flags.join(", ")]);
  const t = document.createElement("table");
  t.innerHTML = "<thead><tr><th>id</th><th>topics</th><th>needs review</th><th>flags</th></tr></thead>";
  const tbody = t.appendChild(document.createElement("tbody"));
  for (const row of rows) {
    const tr = tbody.appendChild(document.createElement("tr"));
    for (const cell of row) tr.appendChild(document.createElement("td")).textContent = cell;
  }
  for (const e of answer.errors) {
    const tr = tbody.appendChild(document.createElement("tr"));
    tr.className = "error";
    tr.appendChild(document.createElement("td")).textContent = e.id ?? ("line " + e.line);
    const td = tr.appendChild(document.createElement("td"));
    td.colSpan = 3; td.textContent = e.field + ": " + e.reason;
  }
  const blob = new Blob(answer.results.map(r => JSON.stringify(r) + "\\n"), {type: "application/x-ndjson"});
  const link = Object.assign(document.createElement("a"),
    {href: URL.createObjectURL(blob), download: file.name.replace(/\\.[^.]*$/, "") + ".scored.jsonl",
     textContent: "download the scored rows (" + answer.results.length + ")"});
  link.id = "download";
  table.replaceChildren(t, link);
});
</script>
</body>
</html>
"""
