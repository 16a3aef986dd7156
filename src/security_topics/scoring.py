"""Batch scoring of article archives: JSONL or Parquet articles in, one row per article out.

An archive holds millions of articles, so nothing here holds the input in memory: files are read
line by line (JSONL) or batch by batch (Parquet), scored in chunks and written one part file per
chunk. OUTPUT is a folder, as Spark writes it, so the local and Spark engines give the same layout:

    OUTPUT/part-00000.parquet …       one part per chunk (`.jsonl` parts when OUTPUT ends in .jsonl)
    OUTPUT/_errors/part-00000.jsonl   input rows that could not be scored: source, line, field, reason
    OUTPUT/_SUCCESS                   written once the whole input has been read

A row: `id`, `topics` (list), `scores` (topic → score), `evidence` (list of {topic, text, start,
end, score, source}), `flags` (list) and `model` ({uri, name, checksum}). Readers of Parquet
folders (pandas, pyarrow, Spark) skip `_errors/` and `_SUCCESS` because of the leading underscore.

Resume: a part (and its errors) is written to a hidden temporary file and renamed, so a killed run
leaves only whole parts; a rerun skips the ids already in OUTPUT and the error rows already in
`_errors/`, and scores the rest. A rerun over a grown input scores only the new articles.

Bad rows never stop the job: a line that is not JSON, a record without `id` or `text`, a `text` or
`title` that is not a string, and a duplicate id (the first occurrence is scored, later ones are
errors) each become one error row naming file and line (1-based row number for Parquet).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from security_topics.atomic import hold_lock
from security_topics.errors import JSON_ERRORS, ConfigError, DataError, json_problem
from security_topics.models.card import ModelCard, directory_digest
from security_topics.text import MAX_ARTICLE_CHARS

if TYPE_CHECKING:  # the predictor (and scikit-learn) loads only where articles are scored
    from security_topics.predictor import ArticleResult, Predictor

log = logging.getLogger(__name__)

INPUT_SUFFIXES = (".jsonl", ".parquet")
ERRORS_DIR = "_errors"
SUCCESS_FILE = "_SUCCESS"
LOCK_FILE = ".lock"  # held by the job writing OUTPUT (score_local)
DEFAULT_BATCH_SIZE = 256  # articles per part: a kill loses at most one part's work
# Articles scored between two moves of the progress bar. Torch and TF-IDF models score a text the same
# in any batch (to 1e-5, tested); a dynamic-int8 export sets activation scales per batch, so its scores
# move slightly with the batch, as they did with the part size before.
PROGRESS_ARTICLES = 32

EVIDENCE_TYPE = pa.struct(
    [
        ("topic", pa.string()),
        ("text", pa.string()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("score", pa.float64()),
        ("source", pa.string()),
    ]
)
MODEL_TYPE = pa.struct([("uri", pa.string()), ("name", pa.string()), ("checksum", pa.string())])
OUTPUT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("topics", pa.list_(pa.string())),
        ("scores", pa.map_(pa.string(), pa.float64())),
        ("evidence", pa.list_(EVIDENCE_TYPE)),
        ("flags", pa.list_(pa.string())),
        ("needs_review", pa.list_(pa.string())),
        ("model", MODEL_TYPE),
    ]
)
ERROR_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("line", pa.int64()),
        ("id", pa.string()),
        ("field", pa.string()),
        ("reason", pa.string()),
    ]
)


# --- input -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputRow:
    """An article ready to score, and where it came from."""

    source: str
    line: int
    id: str
    text: str
    title: str | None = None


@dataclass(frozen=True)
class BadRow:
    """An input row that can not be scored; `line` is 1-based (a Parquet row number), 0 for a whole file."""

    source: str
    line: int
    field: str
    reason: str
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "id": self.id, "field": self.field, "reason": self.reason}


def input_files(path: str | Path) -> list[Path]:
    """The input's files in a fixed order (the order decides which of two duplicate ids wins):
    the file itself, or a folder's `.jsonl` and `.parquet` files (recursively, sorted; names
    starting with `.` or `_` skipped, as Spark and pyarrow do)."""
    path = Path(path)
    if path.is_file():
        if path.suffix not in INPUT_SUFFIXES:
            raise DataError(path, 0, "path", f"unsupported file type {path.suffix!r}: use .jsonl or .parquet")
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or folder: {path}")
    files = sorted(
        p
        for p in path.rglob("*")
        if p.suffix in INPUT_SUFFIXES
        and p.is_file()
        and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )
    if not files:
        raise DataError(path, 0, "path", "the folder holds no .jsonl or .parquet files")
    return files


def count_records(path: str | Path) -> int:
    """How many records INPUT holds, for a progress bar's total: non-blank JSONL lines (a byte scan)
    and Parquet rows (from the files' metadata). Counts error rows too."""
    total = 0
    for file in input_files(path):
        if file.suffix == ".parquet":
            total += pq.ParquetFile(file).metadata.num_rows
        else:
            with open(file, "rb") as stream:
                total += sum(1 for line in stream if line.strip())
    return total


def check_record(obj: Any, source: str, line: int) -> InputRow | BadRow:
    """One input record (a parsed JSON line or a Parquet row) as an article, or why it is not one.

    `text` must be a string (an empty one is scored and flagged `empty`); `id` a string or a whole
    number; `title` a string or absent/null. A lone UTF-16 surrogate (a broken `\\ud83d` escape) in
    any of them is an error row: it could not be written out as UTF-8."""
    if not isinstance(obj, dict):
        return BadRow(source, line, "json", f"expected a JSON object, got {type(obj).__name__}")
    raw_id = obj.get("id")
    article_id = raw_id if isinstance(raw_id, str) else None
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        article_id = str(raw_id)
    if raw_id is None:
        return BadRow(source, line, "id", "missing field")
    if article_id is None or not article_id.strip():
        return BadRow(source, line, "id", f"expected a non-empty string or a whole number, got {raw_id!r}"[:200])
    text, title = obj.get("text"), obj.get("title")
    if text is None:
        return BadRow(source, line, "text", "missing field", article_id)
    if not isinstance(text, str):
        return BadRow(source, line, "text", f"expected a string, got {type(text).__name__}", article_id)
    if title is not None and not isinstance(title, str):
        return BadRow(source, line, "title", f"expected a string, got {type(title).__name__}", article_id)
    for name, value in (("id", article_id), ("text", text), ("title", title)):
        at = _surrogate_at(value)
        if at is not None:
            reason = f"a lone UTF-16 surrogate at character {at} (a broken \\u escape): not text"
            return BadRow(source, line, name, reason, article_id if name != "id" else None)
    return InputRow(source, line, article_id, text, title)


def over_size(row: InputRow, max_chars: int) -> BadRow | None:
    """An error row for an article longer than `max_chars` characters (scoring it would take minutes
    and gigabytes: a broken file, not news), else None."""
    if len(row.text) <= max_chars:
        return None
    reason = f"{len(row.text):,} characters, over the maximum article size of {max_chars:,} (--max-chars)"
    return BadRow(row.source, row.line, "text", reason, row.id)


def _surrogate_at(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def parse_jsonl_line(raw: bytes, source: str, line: int) -> InputRow | BadRow | None:
    """A JSONL line as a record (None for a blank line)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return BadRow(source, line, "encoding", f"bytes are not UTF-8 ({err.reason} at byte {err.start})")
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except JSON_ERRORS as err:
        return BadRow(source, line, "json", f"invalid JSON: {json_problem(err)}")
    return check_record(obj, source, line)


def read_jsonl(
    path: str | Path, start: int = 0, end: int | None = None, first_line: int = 1
) -> Iterator[InputRow | BadRow]:
    """Records of a JSONL file, one line at a time; `start`/`end` (bytes, at line starts) and
    `first_line` read one slice of a big file (the Spark engine's unit of work)."""
    source = str(path)
    with open(path, "rb") as stream:
        if stream.read(2) == b"\x1f\x8b":
            raise DataError(path, 0, "encoding", "the file is gzip-compressed: decompress it first (gunzip)")
        stream.seek(start)
        line = first_line
        while end is None or stream.tell() < end:
            raw = stream.readline()
            if not raw:
                break
            if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a byte-order mark from a Windows editor
            record = parse_jsonl_line(raw.rstrip(b"\r\n"), source, line)
            if record is not None:
                yield record
            line += 1


def read_parquet(
    path: str | Path, row_groups: Sequence[int] | None = None, batch_size: int = 1024
) -> Iterator[InputRow | BadRow]:
    """Records of a Parquet file, one batch at a time (only `id`, `text` and `title` are read)."""
    source = str(path)
    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        yield BadRow(source, 0, "file", f"not a readable Parquet file ({err}): the whole file was skipped")
        return
    columns = [name for name in ("id", "text", "title") if name in reader.schema_arrow.names]
    starts = [0]
    for i in range(reader.num_row_groups):
        starts.append(starts[-1] + reader.metadata.row_group(i).num_rows)
    for group in range(reader.num_row_groups) if row_groups is None else row_groups:
        row = starts[group] + 1
        for batch in reader.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns):
            for obj in batch.to_pylist():
                yield check_record(obj, source, row)
                row += 1


def read_input(path: str | Path) -> Iterator[InputRow | BadRow]:
    """Every record of a file or folder, in `input_files` order."""
    for file in input_files(path):
        yield from read_jsonl(file) if file.suffix == ".jsonl" else read_parquet(file)


# --- the model -----------------------------------------------------------------------------


def describe_model(path_or_uri: str | Path, tracking_uri: str | None = None) -> tuple[Path, dict[str, str]]:
    """The model's local directory and the `model` value of every row it scores."""
    from security_topics.predictor import resolve_model_dir  # a local directory, or fetched from MLflow

    directory = resolve_model_dir(path_or_uri, tracking_uri)
    card = ModelCard.load(directory)
    name = str(card.settings.get("name", card.family))
    return directory, {"uri": str(path_or_uri), "name": name, "checksum": "sha256:" + directory_digest(directory)[:16]}


# --- output rows ---------------------------------------------------------------------------


def result_row(article_id: str, result: ArticleResult, model: dict[str, str]) -> dict[str, Any]:
    """One output row (the same fields as the MLflow pyfunc model's output, plus id and model)."""
    return {"id": article_id, **result.to_row(), "model": dict(model)}


def score_isolated(
    predictor: Predictor, rows: Sequence[InputRow], model: dict[str, str]
) -> tuple[list[dict[str, Any]], list[BadRow]]:
    """Rows scored together, where a record that breaks the model (a tokenizer's panic) is an error
    row and costs only itself (`Predictor.predict_each`)."""
    results = predictor.predict_each([r.text for r in rows], titles=[r.title for r in rows])
    scored, failed = [], []
    for row, result in zip(rows, results):
        if isinstance(result, BaseException):
            reason = f"scoring failed: {type(result).__name__}: {result}"[:300]
            failed.append(BadRow(row.source, row.line, "text", reason, row.id))
            log.warning("%s:%d: %s", row.source, row.line, reason)
        else:
            scored.append(result_row(row.id, result, model))
    return scored, failed


def to_arrow(rows: Sequence[dict[str, Any]], schema: pa.Schema = OUTPUT_SCHEMA) -> pa.Table:
    """Rows as a table of `schema` (a Parquet map wants (key, value) pairs; a field a row lacks is null)."""
    pairs = [{**row, "scores": list(row["scores"].items())} if "scores" in row else row for row in rows]
    return pa.Table.from_pylist(pairs, schema=schema)


def from_arrow(table: pa.Table) -> list[dict[str, Any]]:
    """The inverse of `to_arrow`: rows with `scores` as a dict again."""
    return [{**row, "scores": dict(row["scores"] or [])} for row in table.to_pylist()]


def read_output(output: str | Path) -> list[dict[str, Any]]:
    """Every row of a scored OUTPUT folder (Parquet or JSONL parts, from either engine); for
    tests and small outputs: it holds them all in memory."""
    rows: list[dict[str, Any]] = []
    for part in _parts(Path(output)):
        if part.suffix == ".parquet":
            rows.extend(from_arrow(pq.read_table(part)))
        else:
            rows.extend(json.loads(line) for line in part.read_text(encoding="utf-8").splitlines() if line.strip())
    return rows


def read_errors(output: str | Path) -> list[dict[str, Any]]:
    """Every error row of a scored OUTPUT folder."""
    return [row for part in _parts(Path(output) / ERRORS_DIR) for row in _jsonl_rows(part)]


def _parts(folder: Path) -> list[Path]:
    """A folder's part files (`part-*` with a data suffix; Spark's JSON parts end in .json)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("part-*") if p.suffix in (".parquet", ".jsonl", ".json"))


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                yield json.loads(line)


def output_format(output: str | Path) -> str:
    return "jsonl" if str(output).rstrip("/").endswith(".jsonl") else "parquet"


# --- the local engine ----------------------------------------------------------------------


@dataclass
class ScoreSummary:
    """What a scoring job did: rows scored now, ids skipped as already written, error rows."""

    output: Path
    scored: int = 0
    skipped: int = 0
    errors: int = 0
    parts: int = 0
    model: dict[str, str] = field(default_factory=dict)

    @property
    def errors_dir(self) -> Path:
        return self.output / ERRORS_DIR


class PartWriter:
    """Writes one chunk's rows and errors as numbered parts, each atomically (a hidden temporary
    file, flushed to disk, then renamed): a killed job leaves whole parts or none."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.fmt = output_format(output)
        if output.exists() and not output.is_dir():
            raise ConfigError(f"{output} is a file: OUTPUT is a folder of part files (choose a new name)")
        (output / ERRORS_DIR).mkdir(parents=True, exist_ok=True)
        self.lock = _lock(output)  # before anything is cleaned: another job's temporary parts are its own
        for stale in [*output.glob(".tmp-*"), *(output / ERRORS_DIR).glob(".tmp-*")]:
            stale.unlink()  # the unfinished part of a killed run
        numbers = [int(p.stem.split("-")[1]) for p in _parts(output) + _parts(output / ERRORS_DIR)]
        self.next = max(numbers, default=-1) + 1

    def written(self) -> tuple[set[str], set[tuple[str, int]], set[str]]:
        """Ids already in OUTPUT, (source, line) of the error rows already in `_errors/`, and the
        checksums of the models that scored them."""
        ids: set[str] = set()
        checksums: set[str] = set()
        for part in _parts(self.output):
            if part.suffix == ".parquet":
                table = pq.read_table(part, columns=["id", "model"])
                ids.update(table.column("id").to_pylist())
                checksums.update(pc.unique(table.column("model").combine_chunks().field("checksum")).to_pylist())
            else:
                for row in _jsonl_rows(part):
                    ids.add(row["id"])
                    checksums.add(row["model"]["checksum"])
        errors = {(row["source"], row["line"]) for row in read_errors(self.output)}
        return ids, errors, checksums

    def write(self, rows: Sequence[dict[str, Any]], errors: Sequence[BadRow]) -> None:
        name = f"part-{self.next:05d}"
        if errors:  # first: a kill between the two renames re-scores the rows, never loses an error
            _atomic(
                self.output / ERRORS_DIR / f"{name}.jsonl", lambda f: _write_jsonl(f, [e.to_dict() for e in errors])
            )
        if rows:
            if self.fmt == "parquet":
                _atomic(self.output / f"{name}.parquet", lambda f: pq.write_table(to_arrow(rows), f))
            else:
                _atomic(self.output / f"{name}.jsonl", lambda f: _write_jsonl(f, rows))
        self.next += 1

    def finish(self) -> None:
        (self.output / SUCCESS_FILE).touch()
        self.lock.close()


def _lock(output: Path) -> Any:
    """One job per OUTPUT: held for the job's lifetime (released when it ends, even killed)."""
    refusal = f"{output}: another score job is writing into it; wait for it, or score into another OUTPUT"
    return hold_lock(output / LOCK_FILE, refusal)


def check_output_place(input_path: str | Path, output: str | Path) -> None:
    """Refuse an OUTPUT inside the INPUT folder (its parts would be read as input next time)."""
    source, target = Path(input_path).resolve(), Path(output).resolve()
    if source.is_dir() and target.is_relative_to(source):
        raise ConfigError(f"OUTPUT {output} lies inside INPUT {input_path}: choose a folder outside it")


def _write_jsonl(stream: Any, rows: Iterable[dict[str, Any]]) -> None:
    for row in rows:
        stream.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))


def _atomic(path: Path, write: Callable[[Any], None]) -> None:
    temporary = path.with_name(f".tmp-{path.name}")
    with open(temporary, "wb") as stream:
        write(stream)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def score_local(
    model: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tracking_uri: str | None = None,
    max_evidence: int | None = 3,
    device: str = "auto",
    review_target: float | None = None,
    on_progress: Callable[[int], Any] | None = None,
    max_chars: int = MAX_ARTICLE_CHARS,
) -> ScoreSummary:
    """Score every article of INPUT into the OUTPUT folder, `batch_size` articles per part, in one
    process. Resumable: ids already in OUTPUT are skipped. `on_progress(n)` is called after every
    PROGRESS_ARTICLES articles scored and after each part, with the number of records read since the
    last call (scored, skipped or errors: a progress bar whose total is `count_records(INPUT)`).
    Articles over `max_chars` characters are error rows. One job writes an OUTPUT at a time (a lock
    file in it)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a whole number ≥ 1, got {batch_size!r}")
    input_files(input_path)  # a wrong input fails before the model loads
    check_output_place(input_path, output)
    from security_topics.predictor import Predictor

    directory, model_info = describe_model(model, tracking_uri)  # a missing model: no OUTPUT made
    output = Path(output)
    writer = PartWriter(output)
    done_ids, done_errors, checksums = writer.written()
    if checksums - {model_info["checksum"]}:
        raise ConfigError(
            f"{output} holds rows scored by another model ({', '.join(sorted(checksums))}; this one is "
            f"{model_info['checksum']}): resume with that model, or score into a new OUTPUT"
        )
    predictor = Predictor.load(directory, device=device, max_evidence=max_evidence, review_target=review_target)
    summary = ScoreSummary(output, model=model_info)
    if done_ids:
        log.info("%s already holds %d scored articles: skipping their ids", output, len(done_ids))

    first_seen: dict[str, str] = {}  # id → where it first occurs: the texts stream, the ids stay
    pending: list[InputRow] = []
    errors: list[BadRow] = []
    read = [0, 0]  # records read, and reported to on_progress

    def flush() -> None:
        rows: list[dict[str, Any]] = []
        for start in range(0, len(pending), PROGRESS_ARTICLES):  # the bar moves per chunk, the part is written whole
            chunk = pending[start : start + PROGRESS_ARTICLES]
            scored, failed = score_isolated(predictor, chunk, model_info)
            rows.extend(scored)
            errors.extend(failed)
            if on_progress is not None:
                on_progress(len(chunk))
                read[1] += len(chunk)
        writer.write(rows, errors)
        summary.scored += len(rows)
        summary.errors += len(errors)
        summary.parts += 1
        if on_progress is not None:
            on_progress(read[0] - read[1])
            read[1] = read[0]
        pending.clear()
        errors.clear()

    for record in read_input(input_path):
        read[0] += 1
        if isinstance(record, InputRow):
            record = over_size(record, max_chars) or record
        if isinstance(record, InputRow) and record.id in first_seen:
            record = BadRow(
                record.source, record.line, "id", f"duplicate id (first at {first_seen[record.id]})", record.id
            )
        if isinstance(record, BadRow):
            if (record.source, record.line) in done_errors:
                continue
            log.info("%s:%d: field '%s': %s", record.source, record.line, record.field, record.reason)
            errors.append(record)
        else:
            first_seen[record.id] = f"{record.source}:{record.line}"
            if record.id in done_ids:
                summary.skipped += 1
                continue
            pending.append(record)
        if len(pending) >= batch_size or len(errors) >= batch_size:
            flush()
    if pending or errors:
        flush()
    if on_progress is not None and read[0] > read[1]:
        on_progress(read[0] - read[1])  # the skipped records after the last part
    writer.finish()
    return summary
