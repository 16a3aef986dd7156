"""The corpus in data/raw/ passes its quality gates, and the gates catch what they are for."""

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir

from security_topics.data import Example
from security_topics.labels import LabelSet
from security_topics.quality import check_corpus, cross_validated_macro_f1, near_duplicate_pairs


@pytest.mark.slow
def test_the_corpus_passes_every_quality_gate():
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.root_dir={ROOT}"])
    report = check_corpus(cfg.data)
    assert report.failures == []
    stats = report.stats
    assert stats["sentences"]["none"] >= 1200 and stats["sentences"]["multi_label"] >= 200
    assert 0.6 <= stats["tfidf_cv_macro_f1"] <= 0.97


def test_near_duplicates_are_found():
    texts = [
        "أعلنت وزارة الداخلية ضبط شحنة كبيرة من أقراص الكبتاجون في ميناء جدة الإسلامي",
        "أعلنت وزارة الداخلية ضبط شحنة كبيرة من أقراص الكبتاجون في ميناء جدة الإسلامي اليوم",
        "فاز المنتخب المغربي على نظيره الغاني بهدفين نظيفين في افتتاح البطولة",
        "ارتفعت أسعار النفط في الأسواق العالمية بعد قرار أوبك+ خفض الإنتاج",
    ]
    checked, found = near_duplicate_pairs(texts, threshold=0.8, neighbours=2)
    assert checked >= 3
    assert [(i, j) for i, j, _ in found] == [(0, 1)]


def test_templated_data_scores_near_one_and_would_fail_the_gate():
    labels = LabelSet.of(["a", "b"])
    cities = ["الرياض", "القاهرة", "عمان", "تونس", "الرباط", "بغداد", "دبي", "الدوحة", "مسقط", "بيروت"]
    examples = []
    for i in range(200):
        city = cities[i % 10]
        if i % 2:
            examples.append(Example(f"ضبطت شرطة {city} شحنة مخدرات رقم {i}", ("a",)))
        else:
            examples.append(Example(f"افتتح محافظ {city} معرضا للكتاب رقم {i}", ("b",)))
    assert cross_validated_macro_f1(examples, labels) > 0.97
