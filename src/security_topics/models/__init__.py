"""Model families: score, save and load. `load_model` reads any saved model directory."""

from __future__ import annotations

import importlib
import stat
from pathlib import Path

from security_topics.errors import is_recoverable
from security_topics.models.card import ModelCard, ModelDirError, TopicModel

# family (as written in the card) -> "module:Class"; imported on use, so a TF-IDF model never
# pays for torch. A new family is one line here and one file in this package.
FAMILIES = {
    "tfidf": "security_topics.models.tfidf:TfidfModel",
    "transformer": "security_topics.models.transformer:TransformerModel",
    "ensemble": "security_topics.models.ensemble:EnsembleModel",
    "onnx": "security_topics.models.onnx:OnnxModel",  # `security-topics export`; serves without torch
}


def load_model(
    directory: str | Path, device: str = "auto", precision: str | None = None, num_threads: int | None = None
) -> TopicModel:
    """Load a saved model directory of any family; its card says which.

    `precision` (fp32, bf16; None: the one the card's decisions were tuned in) applies to torch
    families; `auto` serves a torch model on whichever of fp32, native bf16 and the in-budget exports
    beside it measures fastest on this host (`backends.choose`; logged at INFO with the reason).
    `num_threads` applies to ONNX Runtime sessions (torch threads are per process: `Predictor.load`
    sets them; `auto` measures at that count).
    """
    directory = Path(directory)
    check_files(directory)
    card = ModelCard.load(directory)
    if card.family not in FAMILIES:
        raise ModelDirError(f"{directory}: unknown model family {card.family!r}; known: {sorted(FAMILIES)}")
    if precision == "auto":
        from security_topics.models import backends

        if "transformer" in backends.families(directory, card):

            def load_one(folder: Path, chosen: str | None) -> TopicModel:
                return load_model(folder, device=device, precision=chosen, num_threads=num_threads)

            choice = backends.choose(directory, card, load_one, device=device, num_threads=num_threads)
            backends.log.info("%s: precision auto chose %s: %s", directory, choice.backend.name, choice.reason)
            if choice.model is not None:
                return choice.model
            if choice.backend.precision != "auto":  # off the CPU, "auto" is the flag rule of each family
                return load_model(choice.backend.directory, device, choice.backend.precision, num_threads)
    module, name = FAMILIES[card.family].split(":")
    family = getattr(importlib.import_module(module), name)
    try:
        return family.load(directory, card, device=device, precision=precision, num_threads=num_threads)
    except BaseException as err:  # a Rust panic (a tokenizer's normaliser regex) is a BaseException
        if isinstance(err, Exception) or not is_recoverable(err):
            raise
        raise ModelDirError(
            f"{directory}: a native library crashed while loading the model ({type(err).__name__}: {err}); "
            "its tokenizer.json or weights are damaged"
        ) from None


# Size caps per file kind: a model folder whose file is far over them is damaged or hostile (a
# /dev/zero, a 120 MB card), and reading it would hang or exhaust memory.
MAX_WEIGHTS_BYTES = 8 * 2**30  # *.safetensors, *.onnx
MAX_OTHER_BYTES = 256 * 2**20  # tokenizer.json, config.json, vocabularies …
WEIGHT_SUFFIXES = (".safetensors", ".onnx")


def check_files(directory: Path) -> None:
    """A model folder is read only inside itself: plain files (no FIFO, device or socket), no link
    that leaves the folder, each file within its kind's size cap. One ModelDirError names the file."""
    if not directory.is_dir():
        return  # ModelCard.load says what is missing
    root = directory.resolve()
    for path in sorted(directory.rglob("*")):
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise ModelDirError(f"{path}: a link to {path.resolve()}, outside the model folder; copy the file in")
        mode = path.stat().st_mode if path.exists() else 0
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            raise ModelDirError(f"{path}: not a regular file (a FIFO, device, socket or broken link)")
        cap = MAX_WEIGHTS_BYTES if path.suffix in WEIGHT_SUFFIXES else MAX_OTHER_BYTES
        if path.stat().st_size > cap:
            raise ModelDirError(
                f"{path}: {path.stat().st_size:,} bytes, over the {cap:,} bytes a model file of its kind may have"
            )
