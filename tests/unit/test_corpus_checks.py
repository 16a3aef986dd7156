"""The quality gates catch what they are for: near-duplicates and templated data."""

from security_topics.corpus_checks import (
    articles_not_union_of_sentences,
    cross_validated_macro_f1,
    near_duplicate_pairs,
)
from security_topics.data import Article, Example
from security_topics.labels import LabelSet
from security_topics.recipes.tfidf import TfidfRecipe


def _baseline(train, labels):
    return TfidfRecipe(char_ngrams=(2, 5), word_ngrams=(1, 2)).fit(train, [], labels)


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
    assert cross_validated_macro_f1(examples, labels, _baseline) > 0.97


def test_a_real_article_whose_labels_are_not_its_sentences_union_is_named_with_its_line():
    sentences = [
        Example("أوقفت الوحدات عنصرا إرهابيا", ("counterterrorism",), id="ant-1#1", meta={"pool_id": "ant-1"}),
        Example("وكان مفتشا عنه من أجل استهلاك مادة مخدرة", (), id="ant-1#2", meta={"pool_id": "ant-1"}),
        Example("حجز كمية من الزطلة", ("narcotics",), id="ant-2#1", meta={"pool_id": "ant-2"}),
    ]
    articles = [
        Article("ant-1", "عنوان", "نص", ("counterterrorism", "narcotics"), line=1),
        Article("ant-2", "عنوان", "نص", ("narcotics",), line=2),
        Article("ant-3", "عنوان", "نص", ("aviation",), line=3),  # no labelled sentences: not judged
    ]
    found = articles_not_union_of_sentences(sentences, articles)
    assert found == ["ant-1 (line 1): ['counterterrorism', 'narcotics'], sentences ['counterterrorism']"]
