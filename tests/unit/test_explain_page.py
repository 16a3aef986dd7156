"""The explain page: self-contained, right-to-left, the article's own text and line breaks, evidence in
each topic's colour and the carrying words marked inside it."""

import re
from html import unescape

from helpers import KeywordModel

from security_topics.explain import PALETTE, page, render_article
from security_topics.predictor import Predictor

TEXT = (
    "عمان - قال مسؤول أمني إن الأجهزة ضبطت شحنة المخدرات في ميناء العقبة.\n\n"
    "وأضاف أن الطقس كان معتدلا <اليوم> & هادئا.\n"
    "كما أحبطت القوات خلية إرهابية قرب الحدود."
)


def _page(**options):
    predictor = Predictor(KeywordModel())
    result = predictor.predict_article(TEXT, title="ضبط وإحباط", highlights=5, **options)
    return result, page(render_article(result, TEXT, "ضبط وإحباط", predictor.labels), "ضبط وإحباط")


def test_the_page_is_one_offline_right_to_left_document():
    _, html = _page()
    assert html.startswith("<!doctype html>") and '<html dir="rtl" lang="ar">' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html) and "@import" not in html and "<script" not in html


def test_the_article_text_and_line_breaks_are_kept_in_reading_order():
    _, html = _page()
    body = re.search(r'<div class="body">(.*?)</div>', html, re.S).group(1)
    assert unescape(re.sub(r"<[^>]+>", "", body)) == TEXT  # every character, once, in order
    assert "&lt;اليوم&gt; &amp;" in body  # the article's own markup characters are text, not HTML


def test_evidence_takes_its_topic_colour_and_marks_lie_on_its_words():
    result, html = _page()
    assert result.labels == ("a", "b")
    a, b = PALETTE[0], PALETTE[1]
    marks = re.findall(r'<mark style="--c:([^;]+);--w:[0-9.]+" data-topic="(\w)"[^>]*>([^<]+)</mark>', html)
    assert (b, "b", "المخدرات") in marks and (a, "a", "إرهابية") in marks
    assert re.search(rf'<span class="evidence" data-topics="b" style="--c:{b}"[^>]*>[^<]*ضبطت', html)
    assert "data-topics" not in html.split("وأضاف")[0][-200:]  # the plain sentence is not evidence
    assert len(re.findall(r'<li class="topic[ "]', html)) == 2 and "0.70" in html  # badges with the article scores


def test_an_article_without_topics_says_so():
    predictor = Predictor(KeywordModel())
    result = predictor.predict_article("الطقس معتدل اليوم.", highlights=5)
    assert "no security topic" in render_article(result, "الطقس معتدل اليوم.", None, predictor.labels)
