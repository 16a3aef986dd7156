"""Read and validate labelled sentences and articles; write them; fingerprint data files.

Every validation error names file, line and field, so a user labelling in a spreadsheet
can find the cell to fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from security_topics.errors import JSON_ERRORS, DataError, json_problem
from security_topics.labels import LabelSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One labelled sentence; `line` is where it starts in its source file."""

    text: str
    labels: tuple[str, ...]
    id: str = ""
    line: int = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "labels": list(self.labels), **self.meta}

    @property
    def is_real(self) -> bool:
        """Real news (an excerpt of a named corpus, `source` in its metadata), not written for the project."""
        return bool(self.meta.get("source"))


@dataclass(frozen=True)
class Article:
    """A news article with its gold topics (evaluation only: articles never enter training)."""

    id: str
    title: str
    text: str
    labels: tuple[str, ...]
    line: int = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "text": self.text, "labels": list(self.labels), **self.meta}


# --- reading ------------------------------------------------------------------------------


def read_text(path: str | Path) -> str:
    """A UTF-8 file's text; other bytes are a DataError naming the file and line."""
    path = Path(path)
    return decode_text(path.read_bytes(), path)


def decode_text(raw: bytes, path: str | Path) -> str:
    """UTF-8 bytes (a BOM dropped) read from `path` (a file, or `<stdin>`) as text; gzip or other
    bytes are a DataError naming where they came from and the line."""
    path = Path(path)
    if raw[:2] == b"\x1f\x8b":  # one error for the file, not one per line of compressed bytes
        raise DataError(path, 0, "encoding", "the file is gzip-compressed: decompress it first (gunzip)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(path, line, "encoding", f"bytes are not UTF-8 ({err.reason} at byte {err.start})") from None


def _check_labels(values: Iterable[str], label_set: LabelSet, path: Path, line: int) -> tuple[str, ...]:
    labels: list[str] = []
    for value in values:
        if value not in label_set:
            raise DataError(path, line, "labels", f"unknown label {value!r}; the label set is {list(label_set.names)}")
        if value not in labels:
            labels.append(value)
    return tuple(labels)


MAX_TEXT_CHARS = 5000  # a labelled sentence; longer means a broken row (an unclosed quote, say)
MAX_LINES_PER_ROW = 3  # a quoted CSV field may hold a line break or two, not a paragraph


def _check_text(value: Any, path: Path, line: int, name: str = "text", limit: int | None = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str):
        raise DataError(path, line, name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(path, line, name, "is empty")
    if not any(ch.isalnum() for ch in value):
        raise DataError(path, line, name, "has no letters or digits (only punctuation or symbols)")
    if limit is not None and len(value) > limit:
        raise DataError(path, line, name, f"{len(value):,} characters, over the limit of {limit:,} for a sentence")
    return value.strip()


def read_sentences(path: str | Path, label_set: LabelSet) -> list[Example]:
    """Read labelled sentences from CSV (`text,labels`, labels split by `|`) or JSONL."""
    path = Path(path)
    if path.suffix == ".csv":
        return _read_csv(path, label_set)
    if path.suffix == ".jsonl":
        return [
            Example(
                text=_check_text(obj.get("text"), path, line),
                labels=_check_labels(_label_list(obj, path, line), label_set, path, line),
                id=str(obj.get("id") or f"{path.stem}:{line}"),
                line=line,
                meta={k: v for k, v in obj.items() if k not in ("id", "text", "labels")},
            )
            for line, obj in _read_jsonl(path, required=("text", "labels"))
        ]
    raise DataError(path, 0, "path", "unsupported file type: use .csv or .jsonl")


def _read_csv(path: Path, label_set: LabelSet) -> list[Example]:
    """Rows may span lines only inside a properly quoted field, and then only a few lines: an
    unclosed quote would otherwise swallow the rest of the file into one row."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = next(reader, [])
    for column in ("text", "labels"):
        if column not in header:
            raise DataError(path, 1, column, f"missing column; the header is {header}")
    examples = []
    line = reader.line_num + 1  # where the next row starts (rows may span lines)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise DataError(path, line, "text", f"unreadable row ({err}): an unclosed quote?") from None
        row_line, line = line, reader.line_num + 1
        if not values:
            continue  # a blank line
        if line - row_line > MAX_LINES_PER_ROW:
            raise DataError(
                path,
                row_line,
                "text",
                f"one row spans lines {row_line}-{line - 1}: an unclosed quote? Close it, or put the text on one line",
            )
        if len(values) > len(header):
            raise DataError(path, row_line, "row", f"{len(values) - len(header)} value(s) more than the header has")
        row = dict(zip(header, values + [""] * (len(header) - len(values))))
        text = _check_text(row["text"], path, row_line)
        labels = [v.strip() for v in row["labels"].split("|") if v.strip()]
        examples.append(
            Example(
                text=text,
                labels=_check_labels(labels, label_set, path, row_line),
                id=(row.get("id") or f"{path.stem}:{row_line}"),
                line=row_line,
                meta={k: v for k, v in row.items() if k not in ("id", "text", "labels")},
            )
        )
    if not examples:
        raise DataError(path, 2, "rows", "no data rows under the header")
    return examples


def _read_jsonl(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line, obj in _jsonl_objects(path, required):
        if isinstance(obj, DataError):
            raise obj
        rows.append((line, obj))
    return rows


def _jsonl_objects(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, Any] | DataError]]:
    """Each line's object, or the DataError that says why the line is not one."""
    # split on "\n" alone: str.splitlines() also breaks on U+2028 and friends inside a JSON string
    for line, raw in enumerate(read_text(path).split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except JSON_ERRORS as err:
            yield line, DataError(path, line, "json", f"invalid JSON: {json_problem(err)}")
            continue
        if not isinstance(obj, dict):
            yield line, DataError(path, line, "json", "each line must be a JSON object")
            continue
        missing = [key for key in required if key not in obj]
        yield line, DataError(path, line, missing[0], "missing field") if missing else obj


def _label_list(obj: dict[str, Any], path: Path, line: int) -> list[str]:
    labels = obj.get("labels")
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise DataError(path, line, "labels", "expected a list of strings")
    return [v.strip() for v in labels if v.strip()]


def read_articles(path: str | Path, label_set: LabelSet | None) -> list[Article]:
    """Read articles from JSONL, `{id, title, text, labels}` per line; ids must be unique.

    With `label_set=None` the articles are unlabelled (to be predicted): only `text` is required,
    `id` defaults to the line number and `labels` are ignored. The first bad line raises.
    """
    articles = []
    for item in iter_articles(path, label_set):
        if isinstance(item, DataError):
            raise item
        articles.append(item)
    return articles


def iter_articles(path: str | Path, label_set: LabelSet | None) -> Iterator[Article | DataError]:
    """The articles of a JSONL file, with each bad line given as its DataError instead of raised:
    for commands that score every good article and report the bad ones."""
    path = Path(path)
    required = ("text",) if label_set is None else ("id", "text", "labels")
    seen: dict[str, int] = {}
    for line, obj in _jsonl_objects(path, required):
        if isinstance(obj, DataError):
            yield obj
            continue
        try:
            article = _article(obj, path, line, label_set)
            if article.id in seen:
                raise DataError(path, line, "id", f"duplicate id {article.id!r} (first on line {seen[article.id]})")
        except DataError as err:
            yield err
            continue
        seen[article.id] = line
        yield article


def _article(obj: dict[str, Any], path: Path, line: int, label_set: LabelSet | None) -> Article:
    title = obj.get("title") or ""
    if not isinstance(title, str):
        raise DataError(path, line, "title", "expected a string")
    return Article(
        id=str(obj.get("id", line)),
        title=title.strip(),
        text=_check_text(obj["text"], path, line, limit=None),
        labels=() if label_set is None else _check_labels(_label_list(obj, path, line), label_set, path, line),
        line=line,
        meta={k: v for k, v in obj.items() if k not in ("id", "title", "text", "labels")},
    )


def write_jsonl(path: str | Path, records: Iterable[Example | Article]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")


def fingerprint(paths: Iterable[str | Path]) -> str:
    """A short content hash of data files, logged with every run to tie metrics to data."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def label_counts(examples: Sequence[Example], label_set: LabelSet) -> dict[str, int]:
    counts = Counter(label for e in examples for label in e.labels)
    counts["none"] = sum(1 for e in examples if not e.labels)
    return {name: counts.get(name, 0) for name in (*label_set.names, "none")}
