"""What CI pays for the notebooks: seconds per chapter under nbval in the smoke budget.

``make test`` executes every chapter notebook with ``DLBOOK_BUDGET=smoke`` through nbval. This
script runs the same command once per notebook, each in its own pytest process, and reports
the wall time of each, so CI's cost is known chapter by chapter and a chapter that creeps
past its 2-minute smoke budget is visible. The first notebook also pays for any data
decoding the cache does not hold yet; run it twice for warm numbers. Take the CPU lock::

    flock /tmp/dlbook-cpu.lock python benchmarks/smoke_budget.py results/smoke_budget.json
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from _common import finish, parser, start

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 120  # each chapter's smoke budget (the chapter issues ask for under 2 minutes)


def run(args) -> dict:
    notebooks = args.notebooks or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "chapters").glob("*.ipynb"))
    if args.quick and not args.notebooks:
        notebooks = notebooks[:1]
    result = start("smoke_budget", f"every chapter passes nbval in the smoke budget in under {LIMIT_S} s",
                   torch.device("cpu"), notebooks=notebooks)
    env = {**os.environ, "DLBOOK_BUDGET": "smoke"}
    result["notebooks"] = {}
    for nb in notebooks:
        tic = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", nb],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - tic
        tail = proc.stdout.strip().splitlines()[-1:] or [""]
        result["notebooks"][nb] = {"seconds": round(seconds, 1), "passed": proc.returncode == 0, "pytest": tail[0]}
        print(f"{nb:45s} {seconds:6.1f} s  {'passed' if proc.returncode == 0 else 'FAILED'}  {tail[0]}", flush=True)
    return result


def report(result: dict) -> str:
    rows = result["notebooks"]
    lines = [f"nbval in the smoke budget, one pytest process per chapter, {result['machine']['device']}"]
    for nb, r in rows.items():
        flag = "" if r["seconds"] <= LIMIT_S else f"  over the {LIMIT_S} s budget"
        lines.append(f"  {Path(nb).name:40s} {r['seconds']:6.1f} s  {'passed' if r['passed'] else 'FAILED'}{flag}")
    lines.append(f"  {'total':40s} {sum(r['seconds'] for r in rows.values()):6.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--notebooks", nargs="*", default=None, help="default: every chapters/*.ipynb (--quick: the first)")
    args = p.parse_args(argv)
    result = run(args)
    finish(result, args.out, report(result))
    return 0 if all(r["passed"] for r in result["notebooks"].values()) else 1  # a failing chapter fails the run


if __name__ == "__main__":
    sys.exit(main())
