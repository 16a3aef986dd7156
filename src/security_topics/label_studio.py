"""The Label Studio round trip: tasks with pre-annotations out, a labelling config, exports back in.

Tasks hold the text (shown right to left), one multi-select Choices control with the topics and
`none`, and the model's view as `predictions` (`model_version`, a score, the suggested topics, and
evidence spans as `labels` regions with their text and offsets). `read_export` turns a Label Studio
JSON export (or its CSV export, filled in a spreadsheet) back into corpus rows, with who labelled
each row and when; errors name file, line (or task) and field like every other reader here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from security_topics.data import read_text
from security_topics.errors import JSON_ERRORS, DataError, json_problem
from security_topics.labels import LabelSet

NONE = "none"
CHOICES = "topics"  # the Choices control's name
EVIDENCE = "evidence"  # the Labels control for evidence spans
TEXT = "text"


def labelling_config(labels: LabelSet, evidence: bool = False) -> str:
    """Label Studio's XML labelling config: the text right to left, one multi-select Choices control
    with every topic and `none`, and (for articles) evidence spans labelled by topic."""
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in (*labels.names, NONE))
    spans = ""
    if evidence:
        span_labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in labels.names)
        spans = f'\n  <Labels name="{EVIDENCE}" toName="{TEXT}">\n{span_labels}\n  </Labels>'
    return (
        '<View style="direction: rtl; text-align: right">\n'
        f'  <Header value="$title"/>\n'
        f'  <Text name="{TEXT}" value="$text" granularity="word"/>{spans}\n'
        f'  <Choices name="{CHOICES}" toName="{TEXT}" choice="multiple" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


@dataclass
class Task:
    """One text to label, with the model's suggestion (topics, score) and evidence spans."""

    id: str
    text: str
    title: str = ""
    topics: Sequence[str] = ()
    score: float | None = None
    spans: Sequence[dict[str, Any]] = ()  # {start, end, text, topic}
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, model_version: str) -> dict[str, Any]:
        result: list[dict[str, Any]] = [
            {
                "id": f"{self.id}-topics",
                "from_name": CHOICES,
                "to_name": TEXT,
                "type": "choices",
                "value": {"choices": list(self.topics) or [NONE]},
            }
        ]
        for i, span in enumerate(self.spans):
            result.append(
                {
                    "id": f"{self.id}-span{i}",
                    "from_name": EVIDENCE,
                    "to_name": TEXT,
                    "type": "labels",
                    "value": {
                        "start": int(span["start"]),
                        "end": int(span["end"]),
                        "text": span["text"],
                        "labels": [span["topic"]],
                    },
                }
            )
        prediction: dict[str, Any] = {"model_version": model_version, "result": result}
        if self.score is not None:
            prediction["score"] = float(self.score)
        return {"data": {"id": self.id, TEXT: self.text, "title": self.title, **self.meta}, "predictions": [prediction]}


def write_tasks(
    path: Path, tasks: Sequence[Task], labels: LabelSet, model_version: str, evidence: bool = False
) -> None:
    """Tasks as Label Studio's JSON import, with the labelling config beside them (`label_config.xml`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps([t.to_json(model_version) for t in tasks], ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    (path.parent / "label_config.xml").write_text(labelling_config(labels, evidence), encoding="utf-8")


# --- reading labels back ------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledRow:
    """A labelled text from an export: corpus fields plus who labelled it and when."""

    id: str
    text: str
    labels: tuple[str, ...]
    annotator: str
    annotated_at: str
    line: int
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "labels": list(self.labels),
            "annotator": self.annotator,
            "annotated_at": self.annotated_at,
            **self.meta,
        }


def read_export(path: str | Path, labels: LabelSet) -> list[LabelledRow]:
    """Rows from a Label Studio export: JSON (a list of tasks with annotations) or CSV (one row per
    task, the `topics` column holding the choices). A task without an annotation is an error: an
    export is read whole or not at all. The latest non-cancelled annotation of a task counts."""
    path = Path(path)
    if path.suffix == ".json":
        return _read_json(path, labels)
    if path.suffix == ".csv":
        return _read_csv(path, labels)
    raise DataError(path, 0, "path", "a Label Studio export is .json or .csv")


def _choices(values: Any, labels: LabelSet, path: Path, line: int) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise DataError(path, line, CHOICES, f"expected a list of topics, got {values!r}")
    unknown = [v for v in values if v != NONE and v not in labels]
    if unknown:
        raise DataError(path, line, CHOICES, f"unknown topic(s) {unknown}; the label set is {list(labels.names)}")
    if NONE in values and len(values) > 1:
        raise DataError(path, line, CHOICES, f"'{NONE}' together with topics {values}: choose one or the other")
    chosen = [v for v in values if v != NONE]
    if not values:
        raise DataError(path, line, CHOICES, f"nothing chosen: pick the topics or '{NONE}'")
    return tuple(name for name in labels.names if name in chosen)


def _read_json(path: Path, labels: LabelSet) -> list[LabelledRow]:
    try:
        tasks = json.loads(read_text(path))
    except JSON_ERRORS as err:
        raise DataError(path, getattr(err, "lineno", 1), "json", f"not valid JSON: {json_problem(err)}") from None
    if not isinstance(tasks, list):
        raise DataError(path, 1, "json", "expected a list of tasks (Label Studio's JSON export)")
    rows = []
    for n, task in enumerate(tasks, 1):  # `line` is the task's position in the export
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise DataError(path, n, "data", f"task {n} has no 'data' object")
        data = task["data"]
        text = data.get(TEXT)
        if not isinstance(text, str) or not text.strip():
            raise DataError(path, n, "data.text", f"task {n}: empty or missing text")
        annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            raise DataError(path, n, "annotations", f"task {n} (id {data.get('id')!r}) has no annotation")
        annotation = max(annotations, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
        chosen = [r for r in annotation.get("result") or [] if r.get("from_name") == CHOICES]
        if len(chosen) != 1:
            raise DataError(path, n, CHOICES, f"task {n}: expected one '{CHOICES}' answer, got {len(chosen)}")
        rows.append(
            LabelledRow(
                id=str(data.get("id") or task.get("id")),
                text=text.strip(),
                labels=_choices(chosen[0].get("value", {}).get("choices"), labels, path, n),
                annotator=_annotator(annotation.get("completed_by")),
                annotated_at=str(annotation.get("updated_at") or annotation.get("created_at") or ""),
                line=n,
                meta={k: v for k, v in data.items() if k not in ("id", TEXT) and v not in ("", None)},
            )
        )
    return rows


def _annotator(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("email") or value.get("username") or value.get("id") or "")
    return "" if value is None else str(value)


def _read_csv(path: Path, labels: LabelSet) -> list[LabelledRow]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    for column in (TEXT, CHOICES):
        if column not in (reader.fieldnames or []):
            raise DataError(path, 1, column, f"missing column; the header is {reader.fieldnames}")
    rows = []
    for row in reader:
        line = reader.line_num
        text = (row.get(TEXT) or "").strip()
        if not text:
            raise DataError(path, line, TEXT, "is empty")
        raw = (row.get(CHOICES) or "").strip()
        if raw.startswith(("{", "[")):
            try:
                value = json.loads(raw)
            except JSON_ERRORS:
                raise DataError(path, line, CHOICES, f"not valid JSON: {raw[:60]!r}") from None
            values = value.get("choices") if isinstance(value, dict) else value
        else:
            values = [v.strip() for v in raw.replace("|", ",").split(",") if v.strip()]
        rows.append(
            LabelledRow(
                id=str(row.get("id") or f"{path.stem}:{line}"),
                text=text,
                labels=_choices(values, labels, path, line),
                annotator=str(row.get("annotator") or ""),
                annotated_at=str(row.get("updated_at") or row.get("created_at") or ""),
                line=line,
                meta={
                    k: v
                    for k, v in row.items()
                    if k not in ("id", TEXT, CHOICES, "annotator", "updated_at", "created_at") and v not in ("", None)
                },
            )
        )
    return rows


def import_labels(
    export: str | Path,
    output: str | Path,
    labels: LabelSet,
    corpus: Sequence[str | Path] = (),
    skip_duplicates: bool = False,
) -> dict[str, Any]:
    """Append an export's rows to `output` (a corpus CSV: id,text,labels,annotator,annotated_at,…),
    refusing rows whose text is already in `corpus`, in `output` or twice in the export (after
    normalisation). With `skip_duplicates` they are left out and counted instead."""
    from security_topics.data import read_sentences
    from security_topics.text import dedup_key

    rows = read_export(export, labels)
    output = Path(output)
    seen: dict[str, str] = {}
    for source in [*corpus, *([output] if output.is_file() else [])]:
        for example in read_sentences(source, labels):
            seen.setdefault(dedup_key(example.text), f"{source}:{example.line}")
    fresh, skipped = [], []
    for row in rows:
        key = dedup_key(row.text)
        if key in seen:
            if not skip_duplicates:
                raise DataError(
                    export, row.line, TEXT, f"already labelled at {seen[key]} (use --skip-duplicates to leave it out)"
                )
            skipped.append(row)
            continue
        seen[key] = f"{export}:{row.line}"
        fresh.append(row)
    columns = ["id", TEXT, "labels", "annotator", "annotated_at"]
    columns += sorted({k for r in fresh for k in r.meta} - set(columns))
    new_file = not output.is_file() or output.stat().st_size == 0
    if not new_file:
        with output.open(encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(output, 1, "header", f"the export brings column(s) {missing} that {output} lacks")
        columns = header
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("a", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new_file:
            writer.writeheader()
        for row in fresh:
            values = {**row.meta, "id": row.id, TEXT: row.text, "labels": "|".join(row.labels)}
            writer.writerow({**values, "annotator": row.annotator, "annotated_at": row.annotated_at})
    return {"imported": len(fresh), "skipped_duplicates": len(skipped), "output": str(output)}
