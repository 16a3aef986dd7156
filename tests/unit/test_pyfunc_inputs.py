"""The pyfunc's rows: a text that is not a string is an error naming its row (HTTP 400 when served),
never a number scored as text; a text over max_chars is a row flagged too_long, not scored."""

import pandas as pd
import pytest
from helpers import fit_tfidf
from mlflow.exceptions import MlflowException

from security_topics.mlflow_model import SecurityTopicsModel
from security_topics.predictor import Predictor


@pytest.fixture(scope="module")
def pyfunc(tmp_path_factory):
    model = SecurityTopicsModel()
    model.predictor = Predictor.load(fit_tfidf(tmp_path_factory.mktemp("tfidf")))
    return model


def test_a_number_or_a_list_as_text_names_the_row(pyfunc):
    for bad in (42, ["نص"]):
        with pytest.raises(MlflowException, match=r"row 1: 'text' must be a string") as raised:
            pyfunc.predict(None, pd.DataFrame({"text": ["ضبط كبتاجون.", bad]}))
        assert raised.value.get_http_status_code() == 400


def test_a_bad_param_is_a_400(pyfunc):
    with pytest.raises(MlflowException, match="max_evidence") as raised:
        pyfunc.predict(None, pd.DataFrame({"text": ["ضبط كبتاجون."]}), params={"max_evidence": -1})
    assert raised.value.get_http_status_code() == 400


def test_a_text_over_max_chars_is_flagged_and_the_others_scored(pyfunc):
    frame = pyfunc.predict(
        None, pd.DataFrame({"text": ["ضبط شحنة كبتاجون.", "كلمة " * 100, None]}), params={"max_chars": 100}
    )
    assert frame["flags"].tolist() == [[], ["too_long"], ["empty"]]
    assert "narcotics" in frame["topics"][0] and frame["topics"][1] == []


def test_a_text_that_breaks_the_model_is_a_failed_row_and_the_others_are_scored(pyfunc, monkeypatch):
    from helpers import BREAKS_THE_TOKENIZER, panic_on_marked_texts

    panic_on_marked_texts(monkeypatch)
    frame = pyfunc.predict(None, pd.DataFrame({"text": ["ضبط شحنة كبتاجون.", f"نص {BREAKS_THE_TOKENIZER} المرمّز."]}))
    assert frame["flags"].tolist() == [[], ["failed"]]
    assert "narcotics" in frame["topics"][0] and frame["topics"][1] == []


def test_concurrent_requests_each_get_their_own_evidence_cap(pyfunc):
    """One served model, many requests at once: one request's `max_evidence` never leaks into another's
    answer (the probe saw 8 of 16 answers with the other request's cap, all HTTP 200)."""
    from concurrent.futures import ThreadPoolExecutor

    article = " ".join(
        [
            "ضبطت الشرطة شحنة كبتاجون في ميناء جدة.",
            "وأعلنت إدارة مكافحة المخدرات توقيف ثلاثة مهربين.",
            "وقالت إن الحبوب المخدرة كانت مخبأة في شاحنة فواكه.",
            "وأحيل المتهمون إلى النيابة بتهمة تهريب المخدرات.",
        ]
    )
    frame = pd.DataFrame({"text": [article]})

    def evidence(cap: int) -> list:
        return pyfunc.predict(None, frame, params={"max_evidence": cap})["evidence"][0]

    expected = {cap: evidence(cap) for cap in (0, 1)}
    assert len(expected[0]) > len(expected[1]) >= 1  # the caps give different answers for this article
    caps = [0, 1] * 16
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(evidence, caps))
    assert all(answer == expected[cap] for cap, answer in zip(caps, answers))
