"""The Spark engine of `security-topics score`: the same rows as the local engine, on a cluster.

The job, in Spark's terms:
1. the driver plans units of work from file metadata alone: a Parquet row group, or a slice of a
   JSONL file cut at a line start (its first line number counted on the way, so that error rows
   name the same line as the local engine);
2. executors read and check their units with the local engine's own reader (`mapInArrow`);
3. a window over `id` (ordered by file, then line) keeps the first occurrence of each id and turns
   later ones into error rows, as the local engine does;
4. the articles are repartitioned into tasks of a few Arrow batches of `batch_size` articles and
   scored by `mapInArrow` with a Predictor loaded once per Python worker (a module-level cache;
   Spark reuses its Python workers across tasks), giving `scoring.OUTPUT_SCHEMA` rows, or an error
   row where a record broke the model (the local engine's `score_isolated`);
5. Spark writes OUTPUT (Parquet or JSON parts) and `OUTPUT/_errors/` (reading, id and scoring errors).

pyspark is an optional dependency (`pip install 'security-topics[spark]'`), imported only here.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from security_topics.errors import ConfigError, EngineError
from security_topics.scoring import (
    DEFAULT_BATCH_SIZE,
    ERROR_SCHEMA,
    ERRORS_DIR,
    MAX_ARTICLE_CHARS,
    OUTPUT_SCHEMA,
    BadRow,
    InputRow,
    ScoreSummary,
    check_output_place,
    describe_model,
    input_files,
    output_format,
    over_size,
    read_jsonl,
    read_parquet,
    score_isolated,
    to_arrow,
)

if TYPE_CHECKING:  # loaded by the scoring tasks only: the reading tasks need no scikit-learn
    from security_topics.predictor import Predictor


JSONL_SLICE_BYTES = 32 << 20  # a unit of reading work: a 32 MiB slice of a big JSONL file
UNIT_SCHEMA = pa.schema(
    [
        ("file_index", pa.int64()),
        ("path", pa.string()),
        ("start", pa.int64()),  # JSONL: byte offset of the slice; Parquet: the row group
        ("end", pa.int64()),  # JSONL: byte offset after the slice; Parquet: unused
        ("first_line", pa.int64()),
    ]
)
# What a scoring task returns: an output row, or an error row where a record broke the model (a
# tokenizer's panic); the driver splits them into OUTPUT and OUTPUT/_errors/.
SCORED_SCHEMA = pa.schema([*OUTPUT_SCHEMA, *(f for f in ERROR_SCHEMA if f.name not in OUTPUT_SCHEMA.names)])
RECORD_SCHEMA = pa.schema(
    [
        ("file_index", pa.int64()),
        ("source", pa.string()),
        ("line", pa.int64()),
        ("id", pa.string()),
        ("text", pa.string()),
        ("title", pa.string()),
        ("field", pa.string()),  # set (with reason) on a bad row
        ("reason", pa.string()),
    ]
)
_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
logger.spark.name = org.apache.spark
logger.spark.level = error
logger.hadoop.name = org.apache.hadoop
logger.hadoop.level = error
logger.parquet.name = org.apache.parquet
logger.parquet.level = error
"""  # root and org.apache.spark at one level: else Spark announces "Setting default log level"

_PREDICTORS: dict[tuple[str, str | None, int | None, str], Predictor] = {}  # per Python worker: load each model once


def plan_units(files: list[Path], slice_bytes: int = JSONL_SLICE_BYTES) -> list[dict[str, Any]]:
    """Units of reading work from metadata and one fast newline count per JSONL file (no parsing)."""
    import pyarrow.parquet as pq

    units = []
    for index, path in enumerate(files):
        if path.suffix == ".parquet":
            try:
                groups = pq.ParquetFile(path).num_row_groups
            except (pa.ArrowException, OSError):
                groups = 1  # the executor reports the unreadable file as an error row
            units += [
                {"file_index": index, "path": str(path), "start": g, "end": 0, "first_line": 0} for g in range(groups)
            ]
            continue
        size, start, line = path.stat().st_size, 0, 1
        with open(path, "rb") as stream:
            while start < size:
                stream.seek(min(start + slice_bytes, size) - 1)
                stream.readline()  # on to the next line start (or the end of the file)
                end = stream.tell()
                units.append({"file_index": index, "path": str(path), "start": start, "end": end, "first_line": line})
                stream.seek(start)
                for _ in range(0, end - start, 1 << 20):
                    line += stream.read(min(1 << 20, end - stream.tell())).count(b"\n")
                start = end
    return units


def _read_units(batches: Iterator[pa.RecordBatch], max_chars: int = MAX_ARTICLE_CHARS) -> Iterator[pa.RecordBatch]:
    """Executor side: the records of each unit, good and bad, as RECORD_SCHEMA rows."""
    for batch in batches:
        for unit in batch.to_pylist():
            path = unit["path"]
            if path.endswith(".parquet"):
                records = read_parquet(path, row_groups=[unit["start"]])
            else:
                records = read_jsonl(path, unit["start"], unit["end"], unit["first_line"])
            rows = []
            for record in records:
                if isinstance(record, InputRow):
                    record = over_size(record, max_chars) or record
                row = {"file_index": unit["file_index"], "source": record.source, "line": record.line, "id": record.id}
                if isinstance(record, InputRow):
                    row.update(text=record.text, title=record.title)
                else:
                    row.update(field=record.field, reason=record.reason)
                rows.append(row)
                if len(rows) >= 1024:
                    yield pa.RecordBatch.from_pylist(rows, schema=RECORD_SCHEMA)
                    rows = []
            if rows:
                yield pa.RecordBatch.from_pylist(rows, schema=RECORD_SCHEMA)


def _predictor(model: str, tracking_uri: str | None, options: dict[str, Any]) -> Predictor:
    """This Python worker's Predictor: loaded by its first task, reused by the next ones."""
    key = (model, tracking_uri, tuple(sorted(options.items())))
    if key not in _PREDICTORS:
        from security_topics.predictor import Predictor

        _PREDICTORS[key] = Predictor.load(model, tracking_uri=tracking_uri, **options)
    return _PREDICTORS[key]


def _score_batches(
    batches: Iterator[pa.RecordBatch],
    model: str,
    tracking_uri: str | None,
    options: dict[str, Any],
    info: dict[str, str],
) -> Iterator[pa.RecordBatch]:
    """Executor side: score each Arrow batch of articles with this worker's Predictor, as SCORED_SCHEMA
    rows; a record that breaks the model is an error row and costs only itself (`score_isolated`)."""
    predictor = _predictor(model, tracking_uri, options)
    for batch in batches:
        rows = [InputRow(r["source"], r["line"], r["id"], r["text"], r["title"]) for r in batch.to_pylist()]
        if rows:
            scored, failed = score_isolated(predictor, rows, info)
            yield from to_arrow([*scored, *(bad.to_dict() for bad in failed)], SCORED_SCHEMA).to_batches()


def start_spark(
    master: str,
    app_name: str = "security-topics-score",
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    conf: dict[str, str] | None = None,
) -> Any:
    """A SparkSession with this interpreter as the workers' Python (unless PYSPARK_PYTHON names
    another: a cluster's), bound to 127.0.0.1 when local, with small memory and only errors logged.
    `progress`: Spark's own console bar of each stage's tasks, on stderr. `conf`: Spark settings
    given last (spark-submit's --conf: executor memory, executorEnv.*, a cluster's own)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "the spark engine needs pyspark: pip install 'security-topics[spark]' (and Java 17+)"
        ) from None
    warnings.filterwarnings("ignore", message=".*does not yet fully support pandas", category=FutureWarning)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    log4j = Path(tempfile.gettempdir()) / "security-topics-log4j2.properties"
    log4j.write_text(_LOG4J)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "1g"))
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
        .config("spark.executor.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "true" if progress else "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
        .config("spark.sql.adaptive.enabled", "false")  # keep the partitions this job sizes
    )
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as err:  # pyspark's errors: Java missing, a master out of reach
        raise EngineError(
            f"Spark did not start on {master} (Java 17+ on PATH? `java -version`): {_first_line(err)}"
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def score_spark(
    model: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    master: str = "local[*]",
    batch_size: int = DEFAULT_BATCH_SIZE,
    tracking_uri: str | None = None,
    max_evidence: int | None = 3,
    device: str = "auto",
    review_target: float | None = None,
    max_chars: int = MAX_ARTICLE_CHARS,
    on_stage: Callable[[str], Any] | None = None,
    progress: bool = False,
    conf: dict[str, str] | None = None,
) -> ScoreSummary:
    """Score INPUT into a new OUTPUT folder with a Spark job. Resuming is the local engine's:
    Spark retries failed tasks itself, and an existing OUTPUT is refused rather than mixed.

    `on_stage(text)` is told each stage as it starts, with its rows (a command shows them);
    `progress` turns on Spark's console bar of tasks within each stage; `conf`: Spark settings
    (`start_spark`). A record that breaks the model on an executor is an error row, as locally."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a whole number ≥ 1, got {batch_size!r}")
    files = input_files(input_path)
    check_output_place(input_path, output)
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConfigError(
            f"{output} already exists: the spark engine writes a new OUTPUT folder "
            "(choose another, remove it, or resume it with --engine local)"
        )
    if output.is_dir():
        output.rmdir()  # an empty folder: Spark refuses any existing path, after all the work
    directory, info = describe_model(model, tracking_uri)
    # local masters share this machine's files: executors load the resolved directory; a cluster's
    # executors fetch the model themselves (a shared path, or an MLflow URI reachable from them)
    model_ref = str(directory.resolve()) if master.startswith("local") else str(model)
    stage = on_stage or (lambda text: None)
    stage(f"starting Spark on {master}")
    spark = start_spark(master, batch_size=batch_size, progress=progress, conf=conf)
    try:
        options = {"max_evidence": max_evidence, "device": device, "review_target": review_target}
        return _run_job(spark, files, output, model_ref, tracking_uri, options, info, batch_size, max_chars, stage)
    except (ConfigError, EngineError):
        raise
    except Exception as err:
        if type(err).__module__.startswith(("pyspark", "py4j")):
            raise EngineError(f"the Spark job failed: {_first_line(err)}") from err
        raise
    finally:
        spark.stop()


def _run_job(
    spark: Any,
    files: list[Path],
    output: Path,
    model_ref: str,
    tracking_uri: str | None,
    options: dict[str, Any],
    info: dict[str, str],
    batch_size: int,
    max_chars: int = MAX_ARTICLE_CHARS,
    stage: Callable[[str], Any] = lambda text: None,
) -> ScoreSummary:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.storagelevel import StorageLevel

    parallelism = spark.sparkContext.defaultParallelism
    units = plan_units(files)
    stage(f"reading and checking {len(files):,} files ({len(units):,} units of reading work)")
    # the id window and the errors' sort shuffle: as many partitions as reading units (200 by default)
    spark.conf.set("spark.sql.shuffle.partitions", str(max(parallelism, min(len(units), 2000))))
    unit_frame = spark.createDataFrame(
        [tuple(u[name] for name in UNIT_SCHEMA.names) for u in units], from_arrow_schema(UNIT_SCHEMA)
    )
    records = (
        unit_frame.repartition(max(1, min(len(units), parallelism * 4)))
        .mapInArrow(functools.partial(_read_units, max_chars=max_chars), from_arrow_schema(RECORD_SCHEMA))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    good = records.where(F.col("reason").isNull())
    first = Window.partitionBy("id").orderBy("file_index", "line")
    ranked = (
        good.withColumn("rank", F.row_number().over(first))
        .withColumn("first_source", F.first("source").over(first))
        .withColumn("first_line", F.first("line").over(first))
        .persist(StorageLevel.MEMORY_AND_DISK)  # counted, then scored: the shuffle runs once
    )
    articles = ranked.where(F.col("rank") == 1).drop("rank", "first_source", "first_line")
    duplicates = ranked.where(F.col("rank") > 1).select(
        "source",
        "line",
        "id",
        F.lit("id").alias("field"),
        F.concat(
            F.lit("duplicate id (first at "), F.col("first_source"), F.lit(":"), F.col("first_line"), F.lit(")")
        ).alias("reason"),
    )
    errors = records.where(F.col("reason").isNotNull()).select(*ERROR_SCHEMA.names).unionByName(duplicates)
    count = articles.count()
    # every core busy, and tasks of at most 4 Arrow batches of `batch_size` articles each
    partitions = max(1, min(count, max(parallelism, math.ceil(count / (batch_size * 4)))))
    score = functools.partial(_score_batches, model=model_ref, tracking_uri=tracking_uri, options=options, info=info)
    scored = (
        articles.repartition(partitions)
        .mapInArrow(score, from_arrow_schema(SCORED_SCHEMA))
        .persist(StorageLevel.MEMORY_AND_DISK)  # written, then its failures collected: scored once
    )
    stage(f"scoring {count:,} articles in {partitions:,} tasks on {spark.sparkContext.master}")
    writer = (
        scored.where(F.col("reason").isNull())
        .select(*OUTPUT_SCHEMA.names)
        .write.mode("errorifexists")
        .option("ignoreNullFields", "false")
    )
    if output_format(output) == "jsonl":
        writer.json(str(output))
    else:
        writer.parquet(str(output))
    failures = scored.where(F.col("reason").isNotNull()).select(*ERROR_SCHEMA.names)
    failed = failures.count()
    errors = errors.unionByName(failures).orderBy("source", "line").persist(StorageLevel.MEMORY_AND_DISK)
    error_count = errors.count()
    stage(f"wrote {count - failed:,} rows to {output}; writing {error_count:,} error rows")
    errors.coalesce(1).write.mode("overwrite").option("ignoreNullFields", "false").json(str(output / ERRORS_DIR))
    for frame in (records, ranked, scored, errors):
        frame.unpersist()
    return ScoreSummary(output, scored=count - failed, errors=error_count, parts=partitions, model=info)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


__all__ = ["BadRow", "plan_units", "score_spark", "start_spark"]
