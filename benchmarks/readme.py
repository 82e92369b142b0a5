"""Paste the latest results into README.md, between its benchmark markers.

    python -m benchmarks.readme [--results benchmarks/results/latest.json] [--readme README.md]

Everything between ``<!-- benchmarks:start -->`` and ``<!-- benchmarks:end -->`` is replaced by the
machine summary and tables of ``report.markdown``; the rest of the README is left as it is.
"""
from __future__ import annotations

import argparse
import json
import os

from benchmarks.report import markdown

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def replace_block(text: str, body: str) -> str:
    """``text`` with the block between the markers replaced by ``body`` (markers kept)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"README has no {START} ... {END} block to fill")
    return text[:start + len(START)] + "\n" + body + text[end:]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results", "latest.json"))
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    args = parser.parse_args(argv)
    with open(args.results) as file:
        results = json.load(file)
    with open(args.readme) as file:
        text = file.read()
    with open(args.readme, "w") as file:
        file.write(replace_block(text, markdown(results)))
    print(f"updated {args.readme} from {args.results}")


if __name__ == "__main__":
    main()
