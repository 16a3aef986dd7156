"""Choosing what to label next: uncertainty at the thresholds, spread by diversity, no near-duplicates."""

import json

import numpy as np
import pytest
from helpers import FakeModel

from security_topics.errors import DataError
from security_topics.predictor import Predictor
from security_topics.suggest import choose, read_pool, suggest, surface_vectors, uncertainty


def test_uncertainty_is_one_at_the_threshold_or_inside_the_band_and_falls_away_from_it():
    scores = np.array([[0.5, 0.01], [0.9, 0.01], [0.99, 0.01], [0.6, 0.01]])
    t = np.array([0.5, 0.5])
    u = uncertainty(scores, t, t)
    assert u[0] == pytest.approx(1.0) and u[0] > u[1] > u[2]
    banded = uncertainty(scores, np.array([0.4, 0.4]), np.array([0.7, 0.7]))
    assert banded[3] == pytest.approx(1.0) and banded[1] > u[1]  # in the band: as unsure as can be


def _cluster(rng, centre, n):
    vectors = centre + rng.normal(0, 0.01, (n, len(centre)))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_picks_spread_over_clusters_instead_of_paraphrasing_the_most_uncertain():
    rng = np.random.default_rng(0)
    # 15 near-paraphrases, all very uncertain; and 2 other themes, a little less uncertain.
    centres = np.eye(3)
    vectors = np.vstack([_cluster(rng, centres[0], 15), *[_cluster(rng, c, 5) for c in centres[1:]]])
    scores = np.concatenate([np.full(15, 0.99), np.full(10, 0.9)])
    picks = choose(vectors, scores, 3)
    assert sorted(int(np.argmax(vectors[i])) for i in picks) == [0, 1, 2]  # one per theme, not 3 paraphrases
    assert picks[0] < 15  # the most uncertain comes first


def test_near_duplicates_of_picks_and_of_labelled_rows_are_skipped():
    texts = [
        "ضبط شحنة كبيرة من الكوكايين في ميناء رادس",
        "ضبط شحنة كبيرة من الكوكايين في ميناء رادس.",  # the same words
        "ضبط شحنة كبيرة من الكوكايين في ميناء رادس اليوم",
        "اختراق الموقع الرسمي لوزارة الصحة من قبل قراصنة",
        "هبوط اضطراري لطائرة بعد عطل في المحرك",
    ]
    labelled = ["اختراق الموقع الرسمي لوزارة الصحة من قبل قراصنة"]
    surface = surface_vectors([*texts, *labelled])
    vectors = np.eye(5)  # every text its own meaning: only the wording can make two of them one
    scores = np.linspace(1.0, 0.6, 5)
    picks = choose(vectors, scores, 4, surface[:5], surface[5:])
    assert picks == [0, 4]  # 1 and 2 repeat 0; 3 was labelled already


def test_a_pool_of_articles_gives_its_sentences_without_boilerplate_short_lines_or_repeats(tmp_path):
    pool = tmp_path / "pool.jsonl"
    records = [
        {
            "id": "a1",
            "title": "عنوان",
            "date": "2017-01-02",
            "text": "ضبط شحنة كبيرة من المخدرات في ميناء رادس اليوم.\nتونس.\nاقرأ أيضا: خبر آخر عن الطقس هنا.",
        },
        {
            "id": "a2",
            "title": "عنوان",
            "text": "ضبط شحنة كبيرة من المخدرات في ميناء رادس اليوم. وقال المتحدث إن التحقيق متواصل مع الموقوفين.",
        },
    ]
    pool.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    items = read_pool(pool)
    assert [(p.id, p.article_id) for p in items] == [("a1#1", "a1"), ("a2#2", "a2")]
    assert (
        items[0].meta == {"date": "2017-01-02"} and records[0]["text"][items[0].start : items[0].end] == items[0].text
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "text": 5}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'text'"):
        read_pool(bad)


def test_suggest_returns_the_uncertain_with_the_model_view_of_them(tmp_path):
    table = {f"جملة عن موضوع رقم {i} هنا": [i / 100, 0.05] for i in range(100)}
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "".join(json.dumps({"id": f"s{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(table))
    )
    picks = suggest(Predictor(FakeModel(table)), read_pool(pool, unit="sentence"), 3)
    assert len(picks) == 3 and picks[0].uncertainty >= picks[1].uncertainty >= picks[2].uncertainty
    assert all(abs(table[p.item.text][0] - 0.5) <= 0.2 for p in picks)  # near the threshold 0.5
    assert picks[0].topics == (["a"] if table[picks[0].item.text][0] >= 0.5 else [])
