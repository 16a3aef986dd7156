"""`precision="auto"`: serve a model on whichever of its backends is fastest on this host.

A torch model directory offers up to three ways to score: fp32, bf16 (where the CPU has it natively)
and the exports beside it (`security-topics export`, e.g. `models/default-int8` next to
`models/default`, recognised by the source checksum in their cards). CPU flags do not say which is
fastest: on an AMD EPYC with avx512_bf16 but no AMX, int8 beat bf16 on one thread, where AMX makes
bf16 win. So `auto` loads each candidate, scores the same probe sentences with each in interleaved
rounds, and keeps the fastest. The rates are cached per CPU model, thread count and model files
(`cache_dir()`), so only the first call pays for the measurement.

Only backends inside the accuracy budget may be chosen: an export whose card records no measurement
against its source, or one that breaks a line of BUDGET, is left out (and said so). fp32 and bf16 of
the same weights are always in (bf16 changed 2 of 486 test label sets, README: Fast CPU scoring). The
precision the card's decisions were tuned in wins unless another backend is more than MARGIN faster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from security_topics.errors import ModelDirError, ProjectError
from security_topics.models.card import CARD_FILE, ModelCard, TopicModel, directory_digest
from security_topics.models.ensemble import MEMBERS
from security_topics.models.runtime import usable_cpus

log = logging.getLogger(__name__)

# What an export may change against its source on held-out data (issue #12): export warns past it,
# and `auto` never chooses an export past it.
BUDGET = {"macro_f1_points": 0.5, "sentence_label_sets": 0.01, "article_label_sets": 0.05}
MARGIN = 0.05  # another backend must be this much faster than the card's own precision to be chosen
ROUNDS = 3  # interleaved timing rounds per backend; the best round counts (a neighbour's burst is not the backend)
CACHE_VERSION = 1
MAX_ENTRIES = 64  # cache entries kept, newest first
# Probe sentences of wire length (26-44 tokens with e5's tokenizer), six times over: two or three
# length-capped batches, as an article or a JSONL archive gives.
PROBE = (
    "أعلنت وزارة الداخلية اليوم الأحد ضبط شحنة كبيرة من الأقراص المخدرة في ميناء المدينة، وقالت إن "
    "التحقيقات ما زالت جارية لكشف بقية أفراد الشبكة.",
    "وقال المتحدث باسم الحكومة في مؤتمر صحفي عقده مساء أمس إن الاجتماع تناول سبل تعزيز التعاون "
    "الاقتصادي بين البلدين خلال السنوات المقبلة.",
    "تعرضت أنظمة عدد من المصارف المحلية لهجوم إلكتروني أدى إلى تعطل خدمات الدفع لساعات، بحسب بيان "
    "صادر عن البنك المركزي.",
    "شددت سلطات المطار إجراءات التفتيش على المسافرين والأمتعة بعد العثور على طرد مشبوه في صالة المغادرة صباح الثلاثاء.",
    "أكدت اللجنة المنظمة للبطولة نشر آلاف من عناصر الأمن حول الملاعب ومناطق المشجعين طوال أيام المنافسات.",
    "قتل ثلاثة أشخاص وأصيب آخرون في هجوم مسلح تبنته جماعة متطرفة على نقطة تفتيش في شمال البلاد.",
    "ارتفعت أسعار المواد الغذائية في الأسواق خلال الشهر الماضي بنسبة تجاوزت التوقعات.",
    "فاز المنتخب الوطني على ضيفه بهدفين دون رد في المباراة التي أقيمت مساء السبت.",
) * 6


@dataclass
class Backend:
    """One way to serve the model: `directory` loaded with `precision` (None: as the card says)."""

    name: str  # "fp32", "bf16" or "export <folder name>"
    directory: Path
    precision: str | None


@dataclass
class Choice:
    """What `auto` chose, why, and the loaded model when choosing had to load it."""

    backend: Backend
    reason: str
    rates: dict[str, float] = field(default_factory=dict)  # sentences/s per backend name (measured or cached)
    left_out: dict[str, str] = field(default_factory=dict)  # backend name -> why it could not be chosen
    model: TopicModel | None = None


def over_budget(figures: dict[str, float]) -> list[str]:
    """The lines of BUDGET that `against_source` figures break, in words (a macro-F1 gain is no breach)."""
    breaches = []
    for key, what in (("macro_f1_points", "sentence"), ("article_macro_f1_points", "article")):
        if figures.get(key, 0.0) < -BUDGET["macro_f1_points"]:
            breaches.append(f"loses {-figures[key]:.2f} points of {what} macro-F1 (budget {BUDGET['macro_f1_points']})")
    for key, what in (("sentence_label_sets", "sentence"), ("article_label_sets", "article")):
        if figures.get(key, 0.0) > BUDGET[key]:
            breaches.append(
                f"changes {100 * figures[key]:.1f} % of {what} label sets (budget {100 * BUDGET[key]:.0f} %)"
            )
    return breaches


def cache_dir() -> Path:
    """SECURITY_TOPICS_CACHE_DIR, else $XDG_CACHE_HOME/security-topics, else ~/.cache/security-topics."""
    if os.environ.get("SECURITY_TOPICS_CACHE_DIR"):
        return Path(os.environ["SECURITY_TOPICS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "security-topics"


def cpu_model() -> str:
    """The CPU's model name (what the cache is kept per): /proc/cpuinfo on Linux, else platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def files_signature(directory: Path) -> str:
    """A cheap fingerprint of a folder's files (paths, sizes, modification times): a retrained or
    re-exported model is measured again."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(directory).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def choose(
    directory: Path,
    card: ModelCard,
    load: Callable[[Path, str | None], TopicModel],
    device: str = "auto",
    num_threads: int | None = None,
    measure: Callable[[dict[str, TopicModel], dict[str, str]], dict[str, float]] | None = None,
    cache: Path | None = None,
) -> Choice:
    """Choose the backend to serve `directory` with (see the module doc).

    `load(directory, precision)` loads one candidate; `measure(models, failures)` gives sentences/s
    per name and puts a model that fails to score in `failures` (default: `measure_rates`); `cache`:
    the JSON file of earlier measurements (default: in `cache_dir()`).
    """
    directory = Path(directory)
    cache = cache or cache_dir() / "backends.json"
    # the precision the card's decisions were tuned in: its own, or its transformer member's
    reference = "bf16" if any(c.settings.get("precision") == "bf16" for c in _cards(directory, card)) else "fp32"
    torch_names, why_not = _torch_precisions(directory, card, device)
    if torch_names is None:  # not on a CPU: flags decide, as before
        return Choice(Backend("auto", directory, "auto"), why_not)
    reference = reference if reference in torch_names else "fp32"
    candidates = [Backend(name, directory, name) for name in torch_names]
    left_out = {"bf16": why_not} if why_not else {}
    exports, excluded = _exports_beside(directory, cache)
    candidates += exports
    left_out.update(excluded)
    if len(candidates) == 1:
        return Choice(candidates[0], f"the only backend ({_listing(left_out)})", left_out=left_out)

    threads = num_threads or usable_cpus()
    names = {c.name for c in candidates}
    key = _cache_key(directory, candidates, num_threads)
    store = _read_cache(cache)
    entry = store["entries"].get(key)
    models: dict[str, TopicModel] = {}
    if not _usable(entry, names, reference):
        failed: dict[str, str] = {}
        for candidate in candidates:
            try:
                models[candidate.name] = load(candidate.directory, candidate.precision)
            except ProjectError as err:
                if candidate.name in torch_names:  # the model itself: the caller's error, as without auto
                    raise
                failed[candidate.name] = f"does not load ({err})"
        _set_torch_threads(num_threads)
        rates = (measure or measure_rates)(models, failed) if len(models) > 1 else dict.fromkeys(models, 0.0)
        if reference not in rates:
            raise ModelDirError(f"{directory}: scoring probe sentences failed ({failed.get(reference)})")
        entry = {
            "cpu": cpu_model(),
            "threads": threads,
            "model": str(Path(os.path.abspath(directory))),
            "rates": {name: round(float(rate), 2) for name, rate in rates.items()},
            "failed": failed,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        store["entries"][key] = entry
        _write_cache(cache, _pruned(store))
        source = f"measured now on {entry['cpu']}, {threads} thread(s), cached in {cache}"
    else:
        source = f"measured {entry['measured_at']} on {entry['cpu']}, {threads} thread(s) ({cache})"
    left_out.update(entry["failed"])
    rates = {name: float(rate) for name, rate in entry["rates"].items()}
    if len(rates) == 1:
        (only,) = (c for c in candidates if c.name in rates)
        return Choice(only, f"the only backend ({_listing(left_out)})", {}, left_out, models.get(only.name))
    fastest = max(rates, key=rates.__getitem__)
    chosen = fastest if rates[fastest] > (1 + MARGIN) * rates[reference] else reference
    ranking = ", ".join(f"{name} {rates[name]:.1f}" for name in sorted(rates, key=rates.__getitem__, reverse=True))
    rule = (
        f"fastest, over {MARGIN:.0%} ahead of {reference}"
        if chosen != reference
        else f"the card's precision, nothing over {MARGIN:.0%} faster"
    )
    reason = f"{rule}; sentences/s {ranking}; {source}"
    if left_out:
        reason += f"; {_listing(left_out)}"
    backend = next(c for c in candidates if c.name == chosen)
    return Choice(backend, reason, rates, left_out, models.get(chosen))


def measure_rates(
    models: dict[str, TopicModel], failures: dict[str, str], texts: Iterable[str] = PROBE, rounds: int = ROUNDS
) -> dict[str, float]:
    """Sentences/s of each model on `texts`: one warm-up, then `rounds` interleaved rounds, the best one.
    A model that raises while scoring is dropped, with the reason in `failures`."""
    texts = list(texts)
    working = {}
    for name, model in models.items():
        try:
            model.score(texts[:4])
            working[name] = model
        except Exception as err:  # an export whose graph fails at run time is left out, not fatal
            failures[name] = f"fails to score ({type(err).__name__}: {err})"[:300]
    best = dict.fromkeys(working, float("inf"))
    for _ in range(rounds):
        for name, model in working.items():
            started = time.perf_counter()
            model.score(texts)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: len(texts) / seconds for name, seconds in best.items()}


def _usable(entry: Any, names: set[str], reference: str) -> bool:
    """Whether a cache entry answers for these candidates: its fields of the right types, a positive
    finite rate for the reference, and every candidate either rated or recorded as failed."""
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("cpu", "measured_at")):
        return False
    rates, failed = entry.get("rates"), entry.get("failed")
    if not isinstance(rates, dict) or not isinstance(failed, dict) or set(rates) | set(failed) != names:
        return False
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in rates.values())
    return numbers and reference in rates and all(isinstance(v, str) for v in failed.values())


def _pruned(store: dict[str, Any], keep: int = MAX_ENTRIES) -> dict[str, Any]:
    """The newest `keep` entries (MLflow URIs download to a new folder each time: entries pile up)."""

    def measured_at(item: tuple[str, Any]) -> str:
        return str(item[1].get("measured_at")) if isinstance(item[1], dict) else ""

    newest = sorted(store["entries"].items(), key=measured_at, reverse=True)
    return {**store, "entries": dict(newest[:keep])}


def _torch_precisions(directory: Path, card: ModelCard, device: str) -> tuple[list[str] | None, str]:
    """The torch precisions to try (fp32, and bf16 where native) and why bf16 is not among them; None
    when the model does not run on a CPU here (a GPU decides by its flags). Answered from the CPU's
    flags where they are readable: importing torch to ask costs 3 s, and an export chosen from the
    cache never needs torch."""
    off_cpu = "{}: bf16 where the device has it natively (no measurement off the CPU)"
    on_cpu, native = _cpu_facts(device)
    if on_cpu is False:
        return None, off_cpu.format(device)
    if on_cpu is None or native is None:
        from security_topics.models.transformer import native_bf16, resolve_device

        resolved = resolve_device(device)
        if resolved.type != "cpu":
            return None, off_cpu.format(resolved.type)
        native = native_bf16(resolved)
    if native:
        return ["fp32", "bf16"], ""
    return ["fp32"], "this CPU has no native bf16 (emulated bf16 is slower than fp32)"


def _cpu_facts(device: str) -> tuple[bool | None, bool | None]:
    """(runs on the CPU, the CPU has native bf16), each None where only torch can tell: a GPU driver
    is present for device auto, or the flags are not in /proc/cpuinfo (not Linux)."""
    if device not in ("auto", "cpu"):
        return False, None
    gpu_driver = any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidia0", "/dev/kfd"))
    on_cpu = True if device == "cpu" else (None if gpu_driver or platform.system() != "Linux" else True)
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return on_cpu, None
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), None)
    return on_cpu, None if flags is None else bool({"avx512_bf16", "amx_tile"} & set(flags))


def _exports_beside(directory: Path, cache: Path) -> tuple[list[Backend], dict[str, str]]:
    """Exports of `directory` in the folder that holds it (where its path says, links not followed),
    and the ones left out with the reason. Folders that can not be read are passed over."""
    found, left_out = [], {}
    source_digest: str | None = None
    here = Path(os.path.abspath(directory))
    try:
        siblings = sorted(here.parent.iterdir())
    except OSError:
        return [], {}
    for sibling in siblings:
        if sibling.name.startswith(".") or sibling == here:
            continue
        try:
            if not (sibling / CARD_FILE).is_file():
                continue
            card = ModelCard.load(sibling)
        except (ProjectError, OSError):
            continue
        export = card.settings.get("export")
        if not isinstance(export, dict) or not export.get("source_sha256"):
            continue
        if source_digest is None:
            source_digest = _digest(directory, cache)
        if export["source_sha256"] != source_digest:
            continue
        name = f"export {sibling.name}"
        figures = (export.get("validation") or {}).get("against_source")
        breaches = over_budget(figures) if isinstance(figures, dict) else ["records no measurement against its source"]
        if breaches:
            left_out[name] = f"over the accuracy budget: {'; '.join(breaches)}"
        elif "onnx" in families(sibling, card) and not _has_onnxruntime():
            left_out[name] = "onnxruntime is not installed (pip install -e '.[onnx]')"
        else:
            found.append(Backend(name, sibling, None))
    return found, left_out


def _cards(directory: Path, card: ModelCard) -> list[ModelCard]:
    """The card of a model directory and, for an ensemble, its members' (unreadable ones left out:
    loading names them)."""
    cards = [card]
    members = card.settings.get("members") if card.family == "ensemble" else None
    for member in members if isinstance(members, list) else ():
        try:
            cards.append(ModelCard.load(directory / MEMBERS / str(member)))
        except ProjectError:
            pass
    return cards


def families(directory: Path, card: ModelCard) -> set[str]:
    """The families a model directory holds: its own and, for an ensemble, its members'."""
    return {c.family for c in _cards(directory, card)}


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _digest(directory: Path, cache: Path) -> str:
    """The source checksum exports record (`directory_digest`), cached by files_signature: hashing a
    130 MB model costs a few tenths of a second on every call otherwise."""
    store = _read_cache(cache)
    here = os.path.abspath(directory)
    key = f"{here}\0{files_signature(directory)}"
    if not isinstance(store["digests"].get(key), str):
        store["digests"] = {k: v for k, v in store["digests"].items() if not k.startswith(f"{here}\0")}
        store["digests"][key] = directory_digest(directory)
        _write_cache(cache, store)
    return store["digests"][key]


def _cache_key(directory: Path, candidates: list[Backend], num_threads: int | None) -> str:
    parts = [cpu_model(), str(num_threads or f"default of {usable_cpus()} CPUs"), os.path.abspath(directory)]
    parts += sorted(f"{c.name}\0{files_signature(c.directory)}" for c in candidates)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache, or an empty one when it is missing or unreadable (it is measured again, never fatal)."""
    empty: dict[str, Any] = {"version": CACHE_VERSION, "entries": {}, "digests": {}}
    try:
        store = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty
    except (OSError, ValueError, RecursionError) as err:
        log.warning("%s: unreadable (%s); measuring again", path, err)
        return empty
    valid = isinstance(store, dict) and store.get("version") == CACHE_VERSION
    if not valid or not all(isinstance(store.get(k), dict) for k in ("entries", "digests")):
        log.warning("%s: not a backend cache of version %d; measuring again", path, CACHE_VERSION)
        return empty
    return store


def _write_cache(path: Path, store: dict[str, Any]) -> None:
    """Write by rename (two processes measuring at once leave one whole file); a read-only home is a warning."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(store, indent=1, sort_keys=True), encoding="utf-8")
        temporary.replace(path)
    except OSError as err:
        log.warning("%s: could not save the backend measurement (%s); the next call measures again", path, err)


def _set_torch_threads(num_threads: int | None) -> None:
    """Measure at the thread count the caller will serve with (Predictor.load sets it after loading)."""
    import sys

    if num_threads is not None and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(num_threads)


def _listing(left_out: dict[str, str]) -> str:
    return "; ".join(f"{name} left out: {why}" for name, why in left_out.items()) or "no export beside the model"
