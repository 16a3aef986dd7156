"""Length batches: every text once, in length order, within both caps."""

from hypothesis import given
from hypothesis import strategies as st

from security_topics.models.runtime import length_batches


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=600), max_size=200),
    batch_size=st.integers(min_value=1, max_value=70),
    max_tokens=st.integers(min_value=1, max_value=4096),
)
def test_every_text_lands_once_in_a_length_ordered_batch_within_both_caps(lengths, batch_size, max_tokens):
    batches = length_batches(lengths, batch_size, max_tokens)
    flat = [int(i) for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= max_tokens


def test_short_texts_share_a_batch_and_a_long_one_gets_its_own():
    lengths = [40, 8, 9, 300, 10]
    batches = [sorted(int(i) for i in b) for b in length_batches(lengths, batch_size=64, max_tokens=100)]
    assert batches == [[1, 2, 4], [0], [3]]
