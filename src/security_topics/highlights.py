"""Which words carried a sentence's topic, by occlusion: drop each word, score again, and weigh the
word by how far the topic's score falls without it.

Occlusion needs nothing but the model's own `score`, so it works the same for every family (TF-IDF,
transformers, ensembles, ONNX exports), and its weights read plainly: "without this word the score
is 0.41 lower". It costs one scored variant per word; the predictor runs them all in one batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# A word: letters, digits and Arabic marks (harakat, dagger alif), without the punctuation around it.
_WORD = re.compile(r"[\w\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED]+")

Span = tuple[int, int, float]
HIGHLIGHT_WORDS = 5  # words per evidence sentence when highlights are asked for without a number


# Function words never carry a topic on their own; leaving them (and bare numbers, single letters) out
# of occlusion saves a fifth of the variants (20.6 % of the words of test_real's sentences).
FUNCTION_WORDS = frozenset(
    """في من إلى الى على عن مع و أو او ثم أن ان إن لا لم لن ما هو هي هم هذا هذه ذلك تلك التي الذي الذين
    كان كانت قد بين بعد قبل حتى عند كل بعض خلال أي اي إلا الا أيضا ايضا وفي ومن وعلى وإلى والى وأن وان
    كما حيث فيها فيه منها منه عليه عليها إنه انه أنه لها له بها به تم يتم وقد وكان وقال قال وأضاف وأكد""".split()
)


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every word of `text`, in its own offsets."""
    return [m.span() for m in _WORD.finditer(text)]


def candidate_spans(text: str) -> list[tuple[int, int]]:
    """The words worth occluding: not a function word, not a bare number, at least two letters."""
    return [
        (s, e)
        for s, e in word_spans(text)
        if e - s >= 2 and not text[s:e].isdigit() and text[s:e] not in FUNCTION_WORDS
    ]


def without(text: str, start: int, end: int) -> str:
    """`text` with the word at [start, end) taken out (and the one space it leaves doubled, closed)."""
    left, right = text[:start].rstrip(" "), text[end:].lstrip(" ")
    return f"{left} {right}".strip() if left and right else (left + right).strip()


def without_words(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """`text` with every word at `spans` taken out (the last first, so earlier offsets hold): how
    faithfulness is measured, deleting the highlighted words against as many random ones."""
    for start, end in sorted(spans, reverse=True):
        text = without(text, start, end)
    return text


def occlusion_variants(text: str) -> tuple[list[tuple[int, int]], list[str]]:
    """The candidate words of `text` and, for each, the text without it (what the model scores again)."""
    spans = candidate_spans(text)
    return spans, [without(text, s, e) for s, e in spans]


def occlusion_weights(base: np.ndarray, occluded: np.ndarray) -> np.ndarray:
    """Words × topics: how much each topic's score falls when the word is dropped (never below 0:
    a word whose removal raises the score did not carry the topic)."""
    return np.clip(np.asarray(base, dtype=np.float64)[None, :] - np.asarray(occluded, dtype=np.float64), 0.0, None)


def top_spans(
    spans: Sequence[tuple[int, int]], weights: np.ndarray, top_k: int, offset: int = 0, min_weight: float = 1e-3
) -> list[Span]:
    """The `top_k` heaviest words (weight ≥ `min_weight`) as (start + offset, end + offset, weight),
    in reading order so a page can shade them as it goes."""
    order = np.argsort(-np.asarray(weights), kind="stable")[:top_k]
    chosen = [i for i in order if weights[i] >= min_weight]
    return [(spans[i][0] + offset, spans[i][1] + offset, round(float(weights[i]), 4)) for i in sorted(chosen)]
