"""Arabic text: normalisation and sentence splitting with character offsets.

One `normalize` serves training and prediction; its settings are saved in every model
directory so that a model is always served with the text settings it was trained with.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from typing import Any

# The documented maximum article size (characters) of `predict`, `score`, `serve` and the pyfunc:
# a 50 MB "article" is a broken file, not news, and would take minutes and gigabytes to score.
MAX_ARTICLE_CHARS = 1_000_000

# Harakat, tanween, shadda, sukun, superscript alef and Quranic marks.
_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_TATWEEL = "\u0640"
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_MENTION = re.compile(r"(?<![\w@])@\w+")
_EASTERN_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_ALEF = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا"})
_SPACES = re.compile(r"\s+")
_ARABIC_LETTER = re.compile("[\u0621-\u064a\u0671-\u06d3\u06fa-\u06ff]")

# AraBERT v0.2 (aubmindlab) preprocessing, as published with the hub models: placeholder
# tokens for links, e-mails and users, elongations shortened, spaces around everything that
# is not an Arabic/Latin letter or a digit.
_ARABERT_URL = " [رابط] "
_ARABERT_EMAIL = " [بريد] "
_ARABERT_USER = " [مستخدم] "
_ARABERT_ELONGATION = re.compile(r"(\D)\1{2,}")
_ARABERT_SEPARATE = re.compile(r"([^0-9\u0621-\u063a\u0641-\u064a\u0660-\u0669a-zA-Z\[\] ])")
_ARABERT_HTML = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class NormalizerConfig:
    """Which normalisation steps run; every step is optional so models can choose."""

    diacritics: bool = True
    tatweel: bool = True
    urls: bool = True
    emails: bool = True
    mentions: bool = True
    digits: bool = True
    alef: bool = False
    arabert_v02: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> NormalizerConfig:
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown normalisation step(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: bool(v) for k, v in values.items()})

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)


# Invisible format characters (ZWJ, ZWNJ, LRM, RLM, BOM …) and Arabic presentation forms (the
# glyph variants of letters, U+FB50–U+FDFF and U+FE70–U+FEFF) change tokens without changing the
# text a reader sees; Persian yeh and keheh stand for Arabic yeh and kaf in Arabic text.
_PRESENTATION_FORMS = re.compile("[\ufb50-\ufdff\ufe70-\ufefe]+")
_PERSIAN = str.maketrans({"\u06cc": "\u064a", "\u06a9": "\u0643"})


def clean_unicode(text: str) -> str:
    """Drop format characters, lone surrogates and non-space control characters, fold Arabic
    presentation forms (NFKC) and Persian yeh/keheh; the visible text stays the same."""
    if not text.isprintable():  # only then can it hold format, surrogate or control characters
        text = "".join(
            ch
            for ch in text
            if not ((category := unicodedata.category(ch)) in ("Cf", "Cs") or (category == "Cc" and not ch.isspace()))
        )
    text = _PRESENTATION_FORMS.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    return text.translate(_PERSIAN)


def normalize(text: str, config: NormalizerConfig | None = None) -> str:
    """Normalise one text according to `config` (defaults: the project's standard steps)."""
    config = config or NormalizerConfig()
    text = clean_unicode(text)
    if config.arabert_v02:
        return _arabert_v02(text)
    text = unicodedata.normalize("NFC", text)
    if config.urls:
        text = _URL.sub(" ", text)
    if config.emails:
        text = _EMAIL.sub(" ", text)
    if config.mentions:
        text = _MENTION.sub(" ", text)
    if config.diacritics:
        text = _DIACRITICS.sub("", text)
    if config.tatweel:
        text = text.replace(_TATWEEL, "")
    if config.digits:
        text = text.translate(_EASTERN_DIGITS)
    if config.alef:
        text = text.translate(_ALEF)
    return _SPACES.sub(" ", text).strip()


def _arabert_v02(text: str) -> str:
    text = html.unescape(text)
    text = _DIACRITICS.sub("", text).replace(_TATWEEL, "")
    text = _URL.sub(_ARABERT_URL, text)
    text = _EMAIL.sub(_ARABERT_EMAIL, text)
    text = _MENTION.sub(_ARABERT_USER, text)
    text = _ARABERT_HTML.sub(" ", text)
    text = text.translate(_EASTERN_DIGITS)
    text = _ARABERT_ELONGATION.sub(r"\1\1", text)
    text = _ARABERT_SEPARATE.sub(r" \1 ", text)
    return _SPACES.sub(" ", text).strip()


def dedup_key(text: str) -> str:
    """A key under which texts that differ only in diacritics, punctuation or spacing are equal."""
    text = normalize(text, NormalizerConfig(alef=True))
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def has_arabic(text: str) -> bool:
    return _ARABIC_LETTER.search(text) is not None


# Lines that news sites and wires add around a story: "read also" links to other stories, follow-us
# and copyright lines, source and byline lines, photo captions. They say nothing about the story.
_BOILERPLATE = re.compile(
    r"^[\W_]*(?:"
    r"(?:اقرأ|إقرأ|اقرا|طالع|شاهد)\s*(?:أيضا|أيضاً|ايضا|ايضاً|المزيد)"
    r"|تابعونا|تابعوا\s+(?:آخر|أخبار|صفحت|حساب)|حقوق\s+النشر|جميع\s+الحقوق|©"
    r"|المصدر\s*[:：\-–]|بقلم\s*[:：]|صورة\s+أرشيفية|الصورة\s*[:：]"
    r"|هل\s+(?:أعجبك|اعجبك|أعجبتك|اعجبتك)|(?:شاركه|شاركها|شارك|انشره|انشرها)\s+(?:مع|على)\s+(?:أصدقائك|اصدقائك|أصحابك)"
    r"|read\s+(?:also|more)|related\s*:|follow\s+us"
    r")",
    re.IGNORECASE,
)


def is_boilerplate(sentence: str) -> bool:
    """True for a wire or website boilerplate line ("اقرأ أيضا: …", "تابعونا على …", "المصدر: …",
    share prompts such as «هل أعجبك الموضوع؟ شاركه مع أصدقائك!»)."""
    return _BOILERPLATE.search(sentence) is not None


MAX_BYLINE_WORDS = 3
_HEADLINE_WORDS = frozenset("في على من إلى الى عن مع بعد قبل ضد".split())  # a short headline has them, a name not


def is_byline(line: str) -> bool:
    """True for an article's first line when it is only an outlet's or author's name («ترك برس»,
    «الجزيرة نت»): a few words, no digits, no sentence punctuation. Only the first line qualifies:
    the predictor asks it of nothing else."""
    words = line.split()
    return 0 < len(words) <= MAX_BYLINE_WORDS and not any(ch.isdigit() or ch in '.!?؟:،,«»"' for ch in line)


# --- sentence splitting -------------------------------------------------------------------


@dataclass(frozen=True)
class Sentence:
    """A sentence and where it stands in the text it came from (`text == source[start:end]`)."""

    text: str
    start: int
    end: int


# A terminator run, optionally closed by quotes or brackets, then space or end of text.
_BOUNDARY = re.compile(r"[.!?؟…]+[»\"”’')\]]*(?=\s|$)|\n+")
# Abbreviations that end in a full stop but rarely end a sentence. Any single letter, such as
# the initial in «د. أحمد», counts as one too (see `_is_abbreviation`).
ABBREVIATIONS = frozenset(
    "هـ ق.م أ.د ج.م.ع إلخ الخ تل dr mr mrs ms prof no vs etc inc ltd co st jr sr u.s u.k u.n e.g i.e a.m p.m".split()
)
_WORD_BEFORE = re.compile(r"([\w.]+)$")
# «عام 2024 م.» and «1446 هـ.» end sentences: an era letter after a year is not an initial.
_ERA_AFTER_YEAR = re.compile(r"\d\s*(?:م|هـ|ه)$")
_LOOK_BEHIND = 48  # characters before a full stop that decide whether it ends an abbreviation


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the full stop at `dot` closes an abbreviation or an initial, not a sentence."""
    window = max(0, dot - _LOOK_BEHIND)  # a bounded look-behind keeps splitting linear in the text
    match = _WORD_BEFORE.search(text, window, dot)
    if not match or _ERA_AFTER_YEAR.search(text, window, dot):
        return False
    word = match.group(1).strip(".").casefold()
    return word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_sentences(text: str) -> list[Sentence]:
    """Split news text into sentences at . ! ? ؟ … and newlines, keeping character offsets.

    Decimals (3.5) and dates (12.03.2024) never split because a boundary needs white space
    after it; abbreviations and initials (د. ، U.S.) do not end a sentence.
    """
    sentences: list[Sentence] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        terminator = match.group(0)
        if terminator == "." and _is_abbreviation(text, match.start()):
            continue
        _append(sentences, text, start, match.start() if terminator.startswith("\n") else match.end())
        start = match.end()
    _append(sentences, text, start, len(text))
    return sentences


def _append(out: list[Sentence], text: str, start: int, end: int) -> None:
    chunk = text[start:end]
    stripped = chunk.strip()
    if not stripped or not any(ch.isalnum() for ch in stripped):
        return
    begin = start + (len(chunk) - len(chunk.lstrip()))
    out.append(Sentence(stripped, begin, begin + len(stripped)))
