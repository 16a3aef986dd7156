"""Build the ANT real-news pool: one JSONL of `{id, source, outlet, date, title, text, category, url}`.

    python data/pools/ant.py                         # clones github.com/antcorpus/antcorpus.data first
    python data/pools/ant.py --repo PATH             # an existing clone, or a bare git directory

ANT (Arabic News Texts) v1.1: 10,161 Jawhara FM (Tunisia) articles, 2013-2017, one file per article in
TREC-like tags. Licence: Apache-2.0, plus the authors' citation requirement (see README.md here). The
pool is written to data/pools/ant.jsonl with data/pools/ant.source.json (repository, commit, file
count, licence) and is never committed: only the excerpts we label enter data/raw/.
Only the standard library is used, so it runs before the project is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from datetime import date, datetime
from pathlib import Path

REPOSITORY = "https://github.com/antcorpus/antcorpus.data"
LICENCE = "Apache-2.0, with a citation requirement: Chouigui, Ben Khiroun and Elayeb, AICCSA 2017"
HERE = Path(__file__).resolve().parent
TAG = re.compile(r"<(DOCNO|URL|SRC|CAT|TITLE|TIME|TEXT|ABSTRACT)>(.*?)</\1>", re.S | re.I)
SENTENCE_END = (".", "!", "?", "؟", ":", "»", '"', "…", ")")


def parse_date(time_field: str, docno: str) -> str | None:
    """ISO date from `2017-01-25T14:36:00+01:00`, `2017-01-25T143600` or `25/01/2017`; else the
    date in the DOCNO (`…-20170125` or `…-25012017`); None when none of them is a real date."""
    candidates = []
    value = time_field.strip()
    if m := re.match(r"(\d{4})-(\d{2})-(\d{2})", value):
        candidates.append((int(m[1]), int(m[2]), int(m[3])))
    if m := re.match(r"(\d{2})/(\d{2})/(\d{4})", value):
        candidates.append((int(m[3]), int(m[2]), int(m[1])))
    if m := re.search(r"-(\d{8})$", docno.strip()):
        digits = m[1]
        candidates.append((int(digits[:4]), int(digits[4:6]), int(digits[6:])))
        candidates.append((int(digits[4:]), int(digits[2:4]), int(digits[:2])))
    for year, month, day in candidates:
        try:
            parsed = date(year, month, day)
        except ValueError:
            continue
        if 2010 <= parsed.year <= 2018:
            return parsed.isoformat()
    return None


def unwrap(text: str) -> str:
    """Join the hard-wrapped lines of a paragraph; a line that ends a sentence ends its paragraph."""
    paragraphs: list[str] = []
    for raw in text.replace("\r", "").split("\n"):
        line = " ".join(raw.split())
        if not line:
            if paragraphs and paragraphs[-1]:
                paragraphs.append("")
            continue
        if paragraphs and paragraphs[-1] and not paragraphs[-1].endswith(SENTENCE_END):
            paragraphs[-1] += " " + line
        else:
            paragraphs.append(line)
    return "\n".join(p for p in paragraphs if p)


def parse(path_name: str, raw: str) -> dict | None:
    fields: dict[str, str] = {}
    for name, value in TAG.findall(raw):
        fields.setdefault(name.upper(), value)
    text = unwrap(fields.get("TEXT", ""))
    docno = fields.get("DOCNO", "").strip() or Path(path_name).stem
    if not text:
        return None
    return {
        "id": f"ant-{docno}",
        "source": "ant",
        "outlet": fields.get("SRC", "").strip() or "Jawhara FM",
        "date": parse_date(fields.get("TIME", ""), docno),
        "title": " ".join(fields.get("TITLE", "").split()),
        "text": text,
        "category": fields.get("CAT", "").strip() or path_name.split("/")[0],
        "url": fields.get("URL", "").strip(),
        "file": path_name,
    }


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True).stdout.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, help="a clone or bare git directory of antcorpus.data")
    parser.add_argument("--output", type=Path, default=HERE / "ant.jsonl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = args.repo
        if repo is None:
            repo = Path(tmp) / "antcorpus.data.git"
            subprocess.run(["git", "clone", "--bare", "--quiet", REPOSITORY, str(repo)], check=True)
        if (repo / ".git").is_dir():
            repo = repo / ".git"
        commit = git(repo, "rev-parse", "HEAD").strip()
        names = [n for n in git(repo, "ls-tree", "-r", "--name-only", commit).splitlines() if n.endswith(".txt")]
        records, skipped = [], []
        for name in names:
            raw = subprocess.run(
                ["git", "--git-dir", str(repo), "show", f"{commit}:{name}"], check=True, capture_output=True
            ).stdout.decode("utf-8", errors="replace")
            record = parse(name, raw)
            (records.append(record) if record else skipped.append(name))
    records.sort(key=lambda r: (r["date"] or "", r["id"]))
    args.output.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    source = {
        "repository": REPOSITORY,
        "commit": commit,
        "files": len(names),
        "articles": len(records),
        "skipped_without_text": skipped,
        "without_date": sum(r["date"] is None for r in records),
        "dates": [records[0]["date"], max(r["date"] or "" for r in records)],
        "licence": LICENCE,
        "built": datetime.now().isoformat(timespec="seconds"),
        "sha256": hashlib.sha256(args.output.read_bytes()).hexdigest(),
    }
    args.output.with_suffix(".source.json").write_text(json.dumps(source, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} articles to {args.output} ({len(skipped)} files without text)", file=sys.stderr)


if __name__ == "__main__":
    main()
