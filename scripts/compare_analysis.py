#!/usr/bin/env python
"""Dump what the analysis gives for corpus articles, to compare two versions of the code.

    .venv/bin/python scripts/compare_analysis.py dump OUT.jsonl [--limit 2000]
    PYTHONPATH=/path/to/old/checkout .venv/bin/python scripts/compare_analysis.py dump OLD.jsonl
    .venv/bin/python scripts/compare_analysis.py compare OLD.jsonl OUT.jsonl

Written for issue #14 (a cheaper build whose analysis, shared with queries, must not change). For
each of the first ``--limit`` articles of the corpus, each text the index analyses (the title, the
body with its captions) gives one line: ``analyze`` on its ``nfc`` (every token's exact and
folded form, positions and offsets), ``pairs``, ``bridges``, the term list of each
``SyllableAnalyzer`` kind, and the token stream Whoosh reads from each text field's analyzer.
``compare`` says whether two dumps are identical and shows the first lines that differ
(``--digest`` dumps keep a hash of each line only: for many articles).
Run ``dump`` from the old checkout's directory with its path in PYTHONPATH to use its code.
"""

from __future__ import annotations

import argparse
import json
import sys
from hashlib import sha256
from pathlib import Path
from typing import Any


def dump(out: Path, limit: int, digest: bool = False) -> None:
    from benchkit.corpus import iter_articles
    from index import analysis
    from index.builder import article_fields
    from index.schema import KINDS, SyllableAnalyzer, build_schema

    schema = build_schema()
    text_fields = [name for name, field in schema.items() if isinstance(field.analyzer, SyllableAnalyzer)]
    analyzers = {kind: SyllableAnalyzer(kind) for kind in KINDS}
    lines = 0
    print(f"dump: index.analysis from {analysis.__file__}", file=sys.stderr)
    with out.open("w", encoding="utf-8") as f:
        for article in iter_articles(limit):
            fields = article_fields(article)
            for source in ("title", "body"):
                text = fields[f"{source}_exact"]
                tokens = analysis.analyze(analysis.nfc(text))
                record: dict[str, Any] = {
                    "id": article.id,
                    "source": source,
                    "tokens": [[t.exact, t.folded, t.pos, t.end_pos, t.start, t.end] for t in tokens],
                    "pairs": analysis.pairs(tokens),
                    "bridges": analysis.bridges(tokens),
                    "terms": {kind: analyzers[kind].terms(text) for kind in KINDS},
                    "whoosh": {
                        name: [(t.text, t.pos) for t in schema[name].analyzer(text, positions=True)]
                        for name in text_fields
                        if name.startswith(source)
                    },
                }
                line = json.dumps(record, ensure_ascii=False)
                if digest:  # the same comparison in a small file, without showing what differs
                    line = json.dumps({"id": article.id, "source": source, "sha256": sha256(line.encode()).hexdigest()})
                f.write(line + "\n")
                lines += 1
    print(f"dump: {lines:,} texts of {limit:,} articles to {out}", file=sys.stderr)


def compare(a: Path, b: Path) -> int:
    differences = 0
    lines = 0
    with a.open(encoding="utf-8") as fa, b.open(encoding="utf-8") as fb:
        for line_a, line_b in zip(fa, fb, strict=False):
            lines += 1
            if line_a != line_b:
                differences += 1
                if differences <= 5:
                    ra, rb = json.loads(line_a), json.loads(line_b)
                    keys = [k for k in ra if ra.get(k) != rb.get(k)]
                    print(f"line {lines}: {ra['id']} {ra['source']}: differs in {keys}")
        rest = sum(1 for _ in fa) + sum(1 for _ in fb)
    if rest:
        print(f"the dumps have different lengths ({rest} lines more in one)")
    print(f"{lines:,} texts compared: " + ("IDENTICAL" if not differences and not rest else f"{differences} differ"))
    return 0 if not differences and not rest else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--limit", type=int, default=2000)
    d.add_argument("--digest", action="store_true", help="one hash a text instead of the text's analysis")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.command == "dump":
        dump(args.out, args.limit, args.digest)
    else:
        sys.exit(compare(args.a, args.b))


if __name__ == "__main__":
    main()
