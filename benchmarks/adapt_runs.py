"""Summarize several runs of ``benchmarks/adapt_quality.py``: each run's scores, their mean and spread.

    python benchmarks/adapt_runs.py WORK [WORK ...] [--json]

Each WORK is the ``--work`` folder of one run (it holds ``results.json``); the table is
:func:`adapt.eval.runs.table`, whose module says what each column means. Run the benchmark with a
few seeds and report the table's mean, with its standard error.

A missing folder or one without a readable ``results.json`` is one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapt.eval.runs import load, summarize, table  # noqa: E402
from colonsim.errors import ColonSimError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work", nargs="+", type=Path, help="--work folders of adapt_quality.py runs")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    try:
        runs = [load(w) for w in args.work]
    except ColonSimError as e:
        print(f"adapt_runs: {e}", file=sys.stderr)
        return 2
    summary = summarize(runs)
    print(json.dumps(summary) if args.json else table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
