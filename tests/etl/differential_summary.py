"""Counts for the README from a differential run: `python -m tests.etl.differential_summary FILE.jsonl`.

FILE is what `ETL_DIFFERENTIAL_REPORT=FILE pytest tests/etl/test_differential.py` wrote (one line per example;
a failing example hypothesis replays is counted once).
"""

from __future__ import annotations

import collections
import json
import sys


def summarize(path: str) -> str:
    lines = list(dict.fromkeys(open(path, encoding="utf-8").read().splitlines()))
    examples = [json.loads(line) for line in lines if line.strip()]
    last = {e["case"]: e for e in examples}
    cases = collections.Counter(e["verdict"] for e in last.values())
    disagreeing = sorted(c for c, e in last.items() if not e["agrees"])
    out = [
        f"pairs (source type x destination type): {len(last)}",
        f"examples (source tables loaded): {len(examples)}, values compared: {sum(e['rows'] for e in examples)}",
        "pairs per verdict: " + ", ".join(f"{v} {cases[v]}" for v in ("ok", "warning", "needs_validation", "error")),
        f"pairs with a disagreement: {len(disagreeing)}",
        *[f"  - {c} ({last[c]['verdict']})" for c in disagreeing],
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(summarize(sys.argv[1]))
