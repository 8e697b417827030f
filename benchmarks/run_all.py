"""Run every benchmark, one after another, and write RESULTS.md from what they measured.

``make bench`` runs this in full (hours on a 2-core CPU: the VGG-11 time-to-accuracy runs
dominate) under the CPU lock; ``make bench-quick`` (and CI) runs every script's ``--quick``
mode into a temporary folder, which checks that they work and measures nothing worth
quoting. Each script runs in its own process and writes its JSON; RESULTS.md collects their
reports with the machine, the library versions, the date and the load of each run.

    python benchmarks/run_all.py                  # full: benchmarks/results/*.json and benchmarks/RESULTS.md
    python benchmarks/run_all.py --quick --out-dir /tmp/bench
    python benchmarks/run_all.py --only --keep-earlier  # measure nothing: RESULTS.md from benchmarks/results
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
    ("step_profile", "7. The profiler's view: where a training step's time goes (behind 1, 2 and 5)", []),
]


def markdown(results: dict[str, list[dict] | str], quick: bool, collected: bool = False) -> str:
    """RESULTS.md: for each benchmark, its runs' reports (newest first), or why there are none.

    ``results[script]`` is a list of results, each a script's JSON with its ``path`` (and
    ``kept`` where this run did not measure it), or a string that says why there is none.
    ``collected``: no benchmark ran; the page was put together from earlier results.
    """
    lines = ["# Benchmark results", "",
             "Written by `benchmarks/run_all.py` (`make bench`); each section is one script's report, "
             "measured side by side in one run. See `benchmarks/README.md` for what each compares.", ""]
    if quick:
        lines += ["**Quick mode**: tiny sizes that check the scripts work. None of these numbers means anything.", ""]
    if collected:
        lines += ["Collected by `run_all.py --only --keep-earlier` from the results in `results/`, without "
                  "measuring anything: each section gives the date, load and JSON of the run(s) it comes from, "
                  "and names the machine where it is not the one below.", ""]
    measured = [r for rs in results.values() if not isinstance(rs, str) for r in rs]
    first = next((r for r in measured if not r.get("kept")), measured[0] if measured else None)
    if first:
        m = first["machine"]
        versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        lines += [f"Machine: {m['device']}, {m['cpu']}, {m['cpus']} CPUs, {m['threads']} threads; {m['platform']}.",
                  f"Versions: {versions}.", ""]
    for script, title, _ in BENCHMARKS:
        rs = results.get(script)
        lines += [f"## {title}", ""]
        if rs is None:  # not asked for (--only)
            lines += ["Not measured in this run (`run_all.py --only` left it out).", ""]
            continue
        if isinstance(rs, str):
            lines += [rs, ""]
            continue
        if len(rs) > 1:
            lines += [f"From {len(rs)} runs, newest first: each older one is shown for the parts (tasks and seeds) "
                      "that no newer one measured.", ""]
            if script == "time_to_accuracy":
                from time_to_accuracy import across_runs  # here: it imports torch, which the rest of this file does not

                summary = across_runs(rs)
                if summary:
                    lines += ["```text", summary, "```", ""]
        for r in rs:
            if r.get("kept") and not collected:
                lines += ["Kept from an earlier run (`--only ... --keep-earlier`): this run did not measure it again.",
                          ""]
            if first and (r["machine"]["cpu"], r["machine"]["device"]) != (first["machine"]["cpu"],
                                                                           first["machine"]["device"]):
                lines += [f"Measured on another machine: {r['machine']['device']}, {r['machine']['cpu']}.", ""]
            lines += [f"Claim: {r['claim']}.", "",
                      f"Run {r['date']}; load average before {r['load_average_before']}, after "
                      f"{r['load_average_after']} (on {r['machine']['cpus']} CPUs). JSON: `{r['path']}`.", "",
                      "```text", r["report"], "```", ""]
    return "\n".join(lines)


def shown_path(path: Path) -> str:
    """How RESULTS.md names a result file: relative to benchmarks/, or its bare name when it lies elsewhere."""
    return str(path.relative_to(HERE)) if path.is_relative_to(HERE) else path.name


def parts(result: dict) -> set:
    """What a result measured: its ``(task, seed)`` pairs where it has tasks (time_to_accuracy), else ``{None}``."""
    tasks = result.get("tasks")
    if isinstance(tasks, dict) and tasks:
        return {(task, seed) for task, t in tasks.items() for seed in t.get("seeds", [])}
    return {None}


def combine(newest_first: list[dict]) -> list[dict]:
    """The results that measured something no newer one did: the newest, then older ones for the other parts.

    So the VGG-11 time-to-accuracy runs, 45 minutes each on a 2-core CPU, can be done in
    separate sittings (``time_to_accuracy.py --tasks vgg11 peer --seeds 1``, later
    ``--tasks vgg11 --seed 1 --seeds 1``) and still fill one section.
    """
    kept, covered = [], set()
    for r in newest_first:
        if parts(r) - covered:
            kept.append(r)
            covered |= parts(r)
    return kept


def earlier_results(out_dir: Path, script: str) -> list[dict]:
    """The full-run results ``script`` wrote into ``out_dir`` that :func:`combine` keeps, newest (by date) first."""
    found = []
    for path in out_dir.glob(f"{script}-*.json"):
        r = json.loads(path.read_text())
        if (r.get("benchmark") == script and "date" in r and "report" in r
                and not r.get("settings", {}).get("quick")):
            found.append({**r, "path": shown_path(path)})
    return combine(sorted(found, key=lambda r: r["date"], reverse=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="every script's --quick mode (CI)")
    p.add_argument("--out-dir", type=Path, default=None, help="default: benchmarks/results (full) or required (quick)")
    p.add_argument("--only", nargs="*", default=None, choices=[b[0] for b in BENCHMARKS],
                   help="run only these scripts; with no names (and --keep-earlier), run none and collect RESULTS.md "
                        "from the results already in the out dir")
    p.add_argument("--time-to-accuracy-tasks", nargs="+", default=None, metavar="TASK",
                   help="only these tasks of time_to_accuracy.py (its --tasks), e.g. lenet5 bilstm: the VGG-11 "
                        "runs take about 45 minutes each; the JSON's name then ends in the tasks")
    p.add_argument("--keep-earlier", action="store_true",
                   help="with --only: fill the sections left out from each script's newest JSON in the out dir, "
                        "marked as kept (to re-measure one figure without re-running the rest); a section also takes "
                        "older results for the tasks and seeds the newer ones did not measure")
    args = p.parse_args(argv)
    if args.keep_earlier and args.only is None:
        p.error("--keep-earlier goes with --only: without it every benchmark is measured again")
    if args.only == [] and not args.keep_earlier:
        p.error("--only with no names runs nothing: add --keep-earlier to collect RESULTS.md from earlier results")
    if args.quick and args.out_dir is None:
        p.error("--quick writes nothing into the repository: pass --out-dir")
    out_dir = args.out_dir or HERE / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d")
    results: dict[str, list[dict] | str] = {}
    failed = []
    for script, title, extra in BENCHMARKS:
        if args.only is not None and script not in args.only:
            if args.keep_earlier and (kept := earlier_results(out_dir, script)):
                results[script] = [{**r, "kept": True} for r in kept]
            continue
        name = f"{script}-{stamp}"
        if script == "time_to_accuracy" and args.time_to_accuracy_tasks:
            extra = [*extra, "--tasks", *args.time_to_accuracy_tasks]
            name += "-" + "+".join(args.time_to_accuracy_tasks)  # leaves a same-day run of other tasks in place
        json_path = out_dir / f"{name}.json"
        cmd = [sys.executable, str(HERE / f"{script}.py"), str(json_path), *(["--quick"] if args.quick else extra)]
        print(f"--- {script}: {' '.join(cmd[1:])}", flush=True)
        proc = subprocess.run(cmd, cwd=HERE)
        if proc.returncode != 0 or not json_path.exists():
            failed.append(script)
            results[script] = f"**Failed** (exit status {proc.returncode}); see the run's log."
            continue
        fresh = {**json.loads(json_path.read_text()), "path": shown_path(json_path)}
        older = [{**r, "kept": True} for r in earlier_results(out_dir, script) if r["path"] != fresh["path"]]
        results[script] = combine([fresh, *older]) if args.keep_earlier else [fresh]
    target = (args.out_dir or HERE) / "RESULTS.md"
    target.write_text(markdown(results, args.quick, collected=args.only == []))
    print(f"wrote {target}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
