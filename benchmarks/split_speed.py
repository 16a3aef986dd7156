"""Sentence splitting speed on long input: a 1 MB article must split in well under a second.

    python benchmarks/split_speed.py [--megabytes 1]

Builds an article from corpus-like sentences (with decimals, abbreviations and quotes, the cases
the splitter looks behind for) and prints the best of 3 timings per size (after a warm-up), so linear growth shows.
"""

import argparse

from predict_speed import best_of  # the same timing: a warm-up, then the best of `repeat`

from security_topics.text import split_sentences

SENTENCES = [
    "أعلنت السلطات ضبط 3.5 طن من المخدرات في ميناء جدة، وقال د. أحمد إن التحقيق مستمر.",
    "«لن نتهاون مع أي تهديد للمطارات»، قال المتحدث باسم الهيئة.",
    "تعرضت أنظمة وزارة المالية لهجوم فدية في 12.03.2024 م.",
    "Police in the U.S. said the stadium was evacuated! ",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=1.0)
    args = parser.parse_args()
    unit = " ".join(SENTENCES) + "\n"
    for share in (0.1, 0.5, 1.0):
        size = int(args.megabytes * share * 1_000_000)
        text = unit * max(1, round(size / len(unit.encode())))
        seconds = best_of(3, lambda text=text: split_sentences(text))
        count = len(split_sentences(text))
        print(f"{len(text.encode()) / 1e6:.2f} MB, {count} sentences: {seconds:.3f} s")


if __name__ == "__main__":
    main()
