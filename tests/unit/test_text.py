import pytest
from hypothesis import given
from hypothesis import strategies as st

from security_topics.text import (
    NormalizerConfig,
    dedup_key,
    has_arabic,
    is_boilerplate,
    is_byline,
    normalize,
    split_sentences,
)


def test_default_normalisation_strips_diacritics_tatweel_links_and_maps_digits():
    text = "أعلنَتْ   الشرطــة ضبط ٣٫٥ طن https://t.co/x عبر info@moi.gov.sa و @MOI_KSA"
    assert normalize(text) == "أعلنت الشرطة ضبط 3٫5 طن عبر و"


@pytest.mark.parametrize(
    ("step", "text", "on", "off"),
    [
        ("diacritics", "مُكافَحة", "مكافحة", "مُكافَحة"),
        ("tatweel", "الأمـــن", "الأمن", "الأمـــن"),
        ("digits", "عام ٢٠٢٦", "عام 2026", "عام ٢٠٢٦"),
        ("urls", "انظر www.example.com الآن", "انظر الآن", "انظر www.example.com الآن"),
        ("mentions", "قال @user اليوم", "قال اليوم", "قال @user اليوم"),
        ("alef", "إعلان أمني", "اعلان امني", "إعلان أمني"),
    ],
)
def test_each_step_can_be_switched(step, text, on, off):
    assert normalize(text, NormalizerConfig.from_dict({step: True})) == on
    assert normalize(text, NormalizerConfig.from_dict({step: False, "alef": False})) == off


def test_unknown_step_is_an_error():
    with pytest.raises(ValueError, match="unknown normalisation step"):
        NormalizerConfig.from_dict({"stemming": True})


def test_arabert_v02_rules():
    text = "قالَ المسؤول: الهجووووم فشل!! ٢٠٢٦ https://x.y @user"
    out = normalize(text, NormalizerConfig(arabert_v02=True))
    # AraBERT shortens a run of three or more letters to two, as its published rules do.
    assert out == "قال المسؤول : الهجووم فشل ! ! 2026 [رابط] [مستخدم]"


def test_dedup_key_ignores_punctuation_spacing_and_diacritics():
    assert dedup_key("ضبطُ شحنةٍ، من الكبتاجون.") == dedup_key("ضبط  شحنة من الكبتاجون")
    assert dedup_key("ضبط شحنة") != dedup_key("ضبط شحنات")


def test_has_arabic():
    assert has_arabic("Police said إن")
    assert not has_arabic("Police arrested 3 people.")


def _texts(text):
    return [s.text for s in split_sentences(text)]


def test_split_on_arabic_and_latin_terminators_with_offsets():
    text = "ضبطت الشرطة شحنة. هل هذه نهاية الشبكة؟ لا!  وقال المتحدث: انتهى…\nسطر جديد"
    sentences = split_sentences(text)
    assert [s.text for s in sentences] == [
        "ضبطت الشرطة شحنة.",
        "هل هذه نهاية الشبكة؟",
        "لا!",
        "وقال المتحدث: انتهى…",
        "سطر جديد",
    ]
    for s in sentences:
        assert text[s.start : s.end] == s.text


def test_split_keeps_decimals_dates_and_abbreviations():
    text = "ضبطت 3.5 طن في 12.03.2026 بحضور د. أحمد. وقالت U.S. officials إن العملية نجحت."
    assert _texts(text) == ["ضبطت 3.5 طن في 12.03.2026 بحضور د. أحمد.", "وقالت U.S. officials إن العملية نجحت."]


def test_split_after_an_era_letter_that_follows_a_year():
    text = "انتهى المشروع عام 2024 م. وبدأت المرحلة الثانية في 1446 هـ. ثم توقفت."
    assert _texts(text) == ["انتهى المشروع عام 2024 م.", "وبدأت المرحلة الثانية في 1446 هـ.", "ثم توقفت."]


def test_split_keeps_closing_quotes_with_their_sentence():
    text = "قال الوزير «انتهت العملية.» ثم غادر."
    assert _texts(text) == ["قال الوزير «انتهت العملية.»", "ثم غادر."]


def test_split_empty_and_punctuation_only():
    assert split_sentences("") == []
    assert split_sentences("  \n ... \n") == []


@pytest.mark.parametrize(
    "line",
    [
        "اقرأ أيضا: ضبط شحنة كبتاجون في ميناء جدة",
        "اقرأ أيضاً: هجوم إلكتروني على مصرف",
        "تابعونا على منصة إكس لآخر الأخبار",
        "حقوق النشر محفوظة لوكالة الأنباء",
        "المصدر: وكالات",
        "(صورة أرشيفية)",
        "بقلم: سنية الغربي",
        "Read also: drones over the airport",
        "هل أعجبك الموضوع؟",
        "شاركه مع أصدقائك!",
    ],
)
def test_boilerplate_lines_are_recognised(line):
    assert is_boilerplate(line)


@pytest.mark.parametrize(
    "sentence",
    [
        "وقال المصدر إن الشحنة ضبطت في الميناء",
        "اقرأوا البيان كاملا قبل الحكم عليه",
        "تابعت الشرطة التحقيق في الهجوم على الملعب",
    ],
)
def test_news_sentences_are_not_boilerplate(sentence):
    assert not is_boilerplate(sentence)


@pytest.mark.parametrize(
    ("line", "byline"),
    [
        ("ترك برس", True),
        ("الجزيرة نت", True),
        ("بغداد 12 مايو", False),
        ("قتل ثلاثة.", False),
        ("أعلنت الشرطة ضبط شحنة مخدرات كبيرة", False),
    ],
)
def test_a_short_name_alone_is_a_byline(line, byline):
    assert is_byline(line) is byline


_CORPUS = [
    "أعلنت وزارة الداخلية ضبط خلية إرهابية في ١٢ مدينة.",
    "تعرضت أنظمة تسجيل الركاب في المطار لهجوم إلكتروني، وفق بيان الهيئة.",
    "الرياض - واس: ضبط 3.5 مليون قرص كبتاجون مخبأة في شحنة فواكه",
    "اقتحم مشجعون أرض الملعب بعد نهاية مباراة الديربي",
]
_INVISIBLE = ["\u200d", "\u200c", "\u200e", "\u200f", "\ufeff", "\u2066", "\u2069", "\ud800", "\x07", "\x00"]


@given(st.sampled_from(_CORPUS), st.lists(st.tuples(st.integers(0, 200), st.sampled_from(_INVISIBLE)), max_size=6))
def test_invisible_characters_never_change_the_normalised_text(text, insertions):
    variant = text
    for position, ch in insertions:
        position %= len(variant) + 1
        variant = variant[:position] + ch + variant[position:]
    assert normalize(variant) == normalize(text)


def test_presentation_forms_and_persian_letters_fold_to_arabic():
    assert normalize("ﺍﻟﺴﻼﻡ ﻋﻠﻴﻜﻢ") == "السلام عليكم"
    assert normalize("ﻫﺠﻮﻡ ﺇﺭﻫﺎﺑﻲ") == normalize("هجوم إرهابي")
    assert normalize("کشف شبکه مخدر در ایران") == "كشف شبكه مخدر در ايران"
