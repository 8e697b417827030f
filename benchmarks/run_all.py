"""Run every benchmark, one after another, and write RESULTS.md from what they measured.

``make bench`` runs this in full (hours on a 2-core CPU: the VGG-11 time-to-accuracy runs
dominate) under the CPU lock; ``make bench-quick`` (and CI) runs every script's ``--quick``
mode into a temporary folder, which checks that they work and measures nothing worth
quoting. Each script runs in its own process and writes its JSON; RESULTS.md collects their
reports with the machine, the library versions, the date and the load of each run.

    python benchmarks/run_all.py                  # full: benchmarks/results/*.json and benchmarks/RESULTS.md
    python benchmarks/run_all.py --quick --out-dir /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, what it measures, extra arguments of the full run); in the order
BENCHMARKS = [
    ("cifar10_pipeline", "1. Input pipeline: dlbook's way vs the textbook DataLoader loop", []),
    ("trainer_overhead", "2. Trainer overhead against a bare loop", []),
    ("precision_layout", "3. Precision, layout and torch.compile for training steps", []),
    ("inference", "4. Inference: eager vs ONNX Runtime vs int8", []),
    ("time_to_accuracy", "5. Time to accuracy over seeds, and against the peer recipe", []),
    ("smoke_budget", "6. The smoke budget: seconds per notebook under nbval", []),
]


def markdown(results: dict[str, dict | str], quick: bool) -> str:
    lines = ["# Benchmark results", "",
             "Written by `benchmarks/run_all.py` (`make bench`); each section is one script's report, "
             "measured side by side in one run. See `benchmarks/README.md` for what each compares.", ""]
    if quick:
        lines += ["**Quick mode**: tiny sizes that check the scripts work. None of these numbers means anything.", ""]
    measured = [r for r in results.values() if isinstance(r, dict)]
    first = next((r for r in measured if not r.get("kept")), measured[0] if measured else None)
    if first:
        m = first["machine"]
        versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        lines += [f"Machine: {m['device']}, {m['cpu']}, {m['cpus']} CPUs, {m['threads']} threads; {m['platform']}.",
                  f"Versions: {versions}.", ""]
    for script, title, _ in BENCHMARKS:
        r = results.get(script)
        lines += [f"## {title}", ""]
        if r is None:  # not asked for (--only)
            lines += ["Not measured in this run (`run_all.py --only` left it out).", ""]
            continue
        if isinstance(r, str):
            lines += [r, ""]
            continue
        if r.get("kept"):
            lines += ["Kept from an earlier run (`--only ... --keep-earlier`): this run did not measure it again.", ""]
        if first and (r["machine"]["cpu"], r["machine"]["device"]) != (first["machine"]["cpu"],
                                                                       first["machine"]["device"]):
            lines += [f"Measured on another machine: {r['machine']['device']}, {r['machine']['cpu']}.", ""]
        lines += [f"Claim: {r['claim']}.", "",
                  f"Run {r['date']}; load average before {r['load_average_before']}, after {r['load_average_after']} "
                  f"(on {r['machine']['cpus']} CPUs). JSON: `{r['path']}`.", "", "```text", r["report"], "```", ""]
    return "\n".join(lines)


def shown_path(path: Path) -> str:
    """How RESULTS.md names a result file: relative to benchmarks/, or its bare name when it lies elsewhere."""
    return str(path.relative_to(HERE)) if path.is_relative_to(HERE) else path.name


def earlier_result(out_dir: Path, script: str) -> dict | None:
    """The newest result ``script`` wrote into ``out_dir`` (by the date inside it), or None."""
    found = []
    for path in out_dir.glob(f"{script}-*.json"):
        r = json.loads(path.read_text())
        if r.get("benchmark") == script and "date" in r and "report" in r:
            found.append({**r, "path": shown_path(path)})
    return max(found, key=lambda r: r["date"], default=None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="every script's --quick mode (CI)")
    p.add_argument("--out-dir", type=Path, default=None, help="default: benchmarks/results (full) or required (quick)")
    p.add_argument("--only", nargs="*", default=None, choices=[b[0] for b in BENCHMARKS])
    p.add_argument("--time-to-accuracy-tasks", nargs="+", default=None, metavar="TASK",
                   help="only these tasks of time_to_accuracy.py (its --tasks), e.g. lenet5 bilstm: the VGG-11 "
                        "runs take about 45 minutes each")
    p.add_argument("--keep-earlier", action="store_true",
                   help="with --only: fill the sections left out from each script's newest JSON in the out dir, "
                        "marked as kept (to re-measure one figure without re-running the rest)")
    args = p.parse_args(argv)
    if args.keep_earlier and args.only is None:
        p.error("--keep-earlier goes with --only: without it every benchmark is measured again")
    if args.quick and args.out_dir is None:
        p.error("--quick writes nothing into the repository: pass --out-dir")
    out_dir = args.out_dir or HERE / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d")
    results: dict[str, dict | str] = {}
    failed = []
    for script, title, extra in BENCHMARKS:
        if args.only is not None and script not in args.only:
            if args.keep_earlier and (kept := earlier_result(out_dir, script)):
                results[script] = {**kept, "kept": True}
            continue
        json_path = out_dir / f"{script}-{stamp}.json"
        if script == "time_to_accuracy" and args.time_to_accuracy_tasks:
            extra = [*extra, "--tasks", *args.time_to_accuracy_tasks]
        cmd = [sys.executable, str(HERE / f"{script}.py"), str(json_path), *(["--quick"] if args.quick else extra)]
        print(f"--- {script}: {' '.join(cmd[1:])}", flush=True)
        proc = subprocess.run(cmd, cwd=HERE)
        if proc.returncode != 0 or not json_path.exists():
            failed.append(script)
            results[script] = f"**Failed** (exit status {proc.returncode}); see the run's log."
            continue
        results[script] = {**json.loads(json_path.read_text()), "path": shown_path(json_path)}
    target = (args.out_dir or HERE) / "RESULTS.md"
    target.write_text(markdown(results, args.quick))
    print(f"wrote {target}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
