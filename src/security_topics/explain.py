"""An article as an analyst reads it: one self-contained, right-to-left HTML page (no network, no
scripts) with each topic's evidence marked in its colour, the words that carried it shaded by weight,
article and sentence scores, flags and the topics in the review band.

`render_article` gives the article's section (the web app shows it in its own page); `page` wraps
it in a whole document. The article keeps its reading order and line breaks: the text between
sentences is written as it stands, and the page keeps white space.
"""

from __future__ import annotations

from html import escape

from security_topics.predictor import ArticleResult, SentenceResult

# One colour per topic, by its place in the model's label set (the label set is data: a sixth topic
# takes the sixth colour, a ninth wraps around).
PALETTE = ("#c0392b", "#1e8449", "#2471a3", "#b9770e", "#7d3c98", "#148f77", "#a04000", "#5d6d7e")

STYLE = """
body { font-family: "Noto Naskh Arabic", "Amiri", "Arial", sans-serif; margin: 0; background: #f6f6f4; color: #222; }
main { max-width: 56rem; margin: 0 auto; padding: 1.5rem; }
.article { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 1.25rem 1.5rem; }
.article h1 { font-size: 1.4rem; margin: 0 0 1rem; }
.body { white-space: pre-wrap; line-height: 2.1; font-size: 1.1rem; }
.topics { display: flex; flex-wrap: wrap; gap: .5rem; margin: 0 0 1rem; padding: 0; list-style: none; }
.topic { border: 2px solid var(--c); border-radius: 999px; padding: .15rem .7rem; }
.topic b { color: var(--c); }
.review { background: #fff3cd; border-color: #b38f00; }
.none { color: #666; }
.flags { color: #7a4b00; font-size: .9rem; }
.evidence { border-bottom: 3px solid var(--c); background: color-mix(in srgb, var(--c) 7%, transparent); }
mark { background: color-mix(in srgb, var(--c) calc(var(--w) * 100%), transparent); color: inherit;
       border-radius: 3px; padding: 0 .1em; }
table { border-collapse: collapse; margin-top: 1rem; font-size: .9rem; width: 100%; }
th, td { border-bottom: 1px solid #e2e2e2; padding: .3rem .4rem; text-align: right; vertical-align: top; }
td.num { font-variant-numeric: tabular-nums; direction: ltr; text-align: left; }
details { margin-top: 1rem; }
"""


def colours(labels: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(labels)}


def render_article(result: ArticleResult, text: str, title: str | None, labels: list[str]) -> str:
    """The article's <section>: topic badges, the marked title and text, and a table of sentence scores."""
    colour = colours(labels)
    carried: dict[tuple[str, int], list[str]] = {}  # (source, start) -> topics it is evidence for
    marks: dict[tuple[str, int], dict[tuple[int, int], tuple[str, float]]] = {}  # heaviest topic per word
    for topic in result.topics:
        for e in topic.evidence:
            key = (e.source, e.start)
            carried.setdefault(key, []).append(topic.topic)
            words = marks.setdefault(key, {})
            for start, end, weight in e.highlights or []:
                span = (int(start), int(end))
                if weight > words.get(span, ("", -1.0))[1]:
                    words[span] = (topic.topic, float(weight))
    review = set(result.needs_review)
    badges = [
        f'<li class="topic{" review" if t.topic in review else ""}" style="--c:{colour[t.topic]}">'
        f"<b>{escape(t.topic)}</b> {t.score:.2f}{' · needs review' if t.topic in review else ''}</li>"
        for t in result.topics
    ]
    badges += [
        f'<li class="topic review" style="--c:{colour[name]}">{escape(name)} {result.scores.get(name, 0):.2f}'
        " · needs review (not labelled)</li>"
        for name in result.needs_review
        if name not in result.labels
    ]
    parts = ['<section class="article" dir="rtl" lang="ar">']
    parts.append(f'<ul class="topics">{"".join(badges)}</ul>' if badges else '<p class="none">no security topic</p>')
    if result.flags:
        parts.append(f'<p class="flags">flags: {escape(", ".join(result.flags))}</p>')
    by_source = {"title": [], "text": []}
    for s in result.sentences:
        by_source.setdefault(s.source, []).append(s)
    clean_title = (title or "").strip()
    if clean_title:
        parts.append(f"<h1>{_marked(clean_title, by_source['title'], 'title', carried, marks, colour)}</h1>")
    parts.append(f'<div class="body">{_marked(text or "", by_source["text"], "text", carried, marks, colour)}</div>')
    parts.append(_sentence_table(result, labels))
    parts.append("</section>")
    return "\n".join(parts)


def page(section: str, heading: str = "security-topics") -> str:
    """A whole, self-contained HTML document around a rendered article."""
    return (
        '<!doctype html>\n<html dir="rtl" lang="ar">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(heading)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{section}\n</main>\n"
        "</body>\n</html>\n"
    )


def _marked(
    text: str,
    sentences: list[SentenceResult],
    source: str,
    carried: dict[tuple[str, int], list[str]],
    marks: dict[tuple[str, int], dict[tuple[int, int], tuple[str, float]]],
    colour: dict[str, str],
) -> str:
    """`text` escaped, evidence sentences wrapped in their topic's colour and their words shaded."""
    out, at = [], 0
    for s in sorted(sentences, key=lambda s: s.start):
        if s.start < at or s.end > len(text):
            continue  # not a span of this text (never expected): leave the text as it stands
        out.append(escape(text[at : s.start]))
        topics = carried.get((source, s.start))
        scores = ", ".join(f"{name} {p:.2f}" for name, p in s.scores.items())
        if not topics:
            out.append(f'<span title="{escape(scores)}">{escape(text[s.start : s.end])}</span>')
        else:
            inner = _shade(text, s.start, s.end, marks.get((source, s.start), {}), colour)
            out.append(
                f'<span class="evidence" data-topics="{escape(" ".join(topics))}" '
                f'style="--c:{colour[topics[0]]}" title="{escape(scores)}">{inner}</span>'
            )
        at = s.end
    out.append(escape(text[at:]))
    return "".join(out)


def _shade(
    text: str, start: int, end: int, words: dict[tuple[int, int], tuple[str, float]], colour: dict[str, str]
) -> str:
    out, at = [], start
    top = max((w for _, w in words.values()), default=1.0) or 1.0
    for (s, e), (topic, weight) in sorted(words.items()):
        if s < at or e > end:
            continue
        shade = 0.25 + 0.6 * weight / top  # the heaviest word darkest; every marked word visible
        out.append(escape(text[at:s]))
        out.append(
            f'<mark style="--c:{colour[topic]};--w:{shade:.2f}" data-topic="{escape(topic)}" '
            f'title="{escape(topic)}: −{weight:.2f} without it">{escape(text[s:e])}</mark>'
        )
        at = e
    out.append(escape(text[at:end]))
    return "".join(out)


def _sentence_table(result: ArticleResult, labels: list[str]) -> str:
    head = "".join(f"<th>{escape(n)}</th>" for n in labels)
    rows = []
    for s in result.sentences:
        cells = "".join(
            f'<td class="num">{s.scores[n]:.2f}</td>' if n in s.scores else '<td class="num">–</td>' for n in labels
        )
        flags = escape(", ".join(s.flags))
        rows.append(f"<tr><td>{escape(s.text)}</td>{cells}<td>{flags}</td></tr>")
    return (
        f"<details><summary>sentence scores ({len(result.sentences)})</summary>"
        f"<table><thead><tr><th>sentence</th>{head}<th>flags</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )
