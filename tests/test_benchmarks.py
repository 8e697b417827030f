"""The benchmark suite keeps working: every script's --quick mode through run_all.py, the GPU check's CPU dry run,
and the time-to-accuracy arithmetic. The full runs are done by hand on a quiet machine (benchmarks/README.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _common  # noqa: E402
import run_all  # noqa: E402
from step_profile import kernel_bound  # noqa: E402
from time_to_accuracy import accuracy_at, compare_with_peer, report, summarise, time_to  # noqa: E402


def test_time_to_accuracy_reads_the_first_epoch_at_the_threshold():
    curve = [(10.0, 0.70), (20.0, 0.86), (30.0, 0.84), (40.0, 0.91)]
    assert time_to(curve, 0.85) == 20.0
    assert time_to(curve, 0.90) == 40.0
    assert time_to(curve, 0.95) is None
    assert accuracy_at(curve, 35.0) == 0.84   # the last epoch that ended within the time
    assert accuracy_at(curve, 5.0) is None


def test_the_peer_comparison_reads_both_curves_at_the_shorter_runs_end():
    ours = {0: [(100.0, 0.80), (200.0, 0.91)], 1: [(110.0, 0.79), (220.0, 0.89)]}
    peer = {0: [(150.0, 0.60), (300.0, 0.84)]}
    tasks = {"vgg11": summarise("vgg11", ours), "peer": summarise("peer", peer)}
    c = compare_with_peer(tasks)
    assert c["equal_time_s"] == 200.0                       # dlbook seed 0's end: every run has an epoch by then
    assert c["dlbook_accuracy_at_equal_time"] == pytest.approx(0.85)   # median of 0.91 and seed 1 at 110 s, 0.79
    assert c["peer_accuracy_at_equal_time"] == 0.60 and c["peer_time_to_85_s"] is None
    assert c["dlbook_time_to_90_s"] == 200.0 and c["peer_accuracy_at_that_time"] == 0.60
    result = {"machine": {"device": "CPU"}, "settings": {"minutes": 5.0}, "tasks": tasks, "peer_comparison": c}
    text = report(result)
    assert "at equal time, 3.3 min" in text and "the peer 60.00%" in text and "the claim is met" in text
    assert "took 3.5 min of the 5-min budget (70%" in text      # median of 200 and 220 s
    tasks["vgg11"] = summarise("vgg11", {0: [(100.0, 0.80), (200.0, 0.875)]})
    text = report({**result, "tasks": tasks, "peer_comparison": compare_with_peer(tasks)})
    assert "its best epoch: 87.50%, 2.50 points short): the claim is not met" in text


@pytest.mark.parametrize("native", [True, False])
def test_emulated_bf16_rows_are_timed_for_one_round(monkeypatch, native):
    monkeypatch.setattr(_common, "cpu_supports_bf16", lambda: native)
    cpu = _common.torch.device("cpu")
    assert _common.rounds_for("bf16", cpu, 4) == (4 if native else 1)
    assert _common.rounds_for("fp32", cpu, 4) == 4 and _common.rounds_for("auto", cpu, 4) == 4


def _result(script, date, cpu="EPYC"):
    return {"benchmark": script, "claim": "c", "date": date, "report": f"{script} at {date}", "path": f"{script}.json",
            "load_average_before": [0.1], "load_average_after": [2.0],
            "machine": {"device": "CPU (2 cores)", "cpu": cpu, "cpus": 2, "threads": 2, "platform": "Linux",
                        "versions": {"torch": "2.14.1"}}}


def test_keep_earlier_takes_the_newest_result_by_its_date_and_says_so(tmp_path):
    (tmp_path / "inference-2026-12-03.json").write_text(json.dumps(_result("inference", "2026-12-03 10:00 UTC")))
    (tmp_path / "inference-cpu-2026-11-28.json").write_text(json.dumps(_result("inference", "2026-11-28 09:00 UTC")))
    (tmp_path / "inference-old.json").write_text(json.dumps({"benchmark": "inference"}))  # no date: not a result
    quick = {**_result("inference", "2026-12-05 10:00 UTC"), "settings": {"quick": True}}  # measures nothing
    (tmp_path / "inference-quick.json").write_text(json.dumps(quick))
    kept = run_all.earlier_results(tmp_path, "inference")
    assert [r["date"] for r in kept] == ["2026-12-03 10:00 UTC"] and run_all.earlier_results(tmp_path, "smoke_budget") == []
    page = run_all.markdown({"trainer_overhead": [_result("trainer_overhead", "2026-12-04 08:00 UTC")],
                             "inference": [{**kept[0], "kept": True}],
                             "smoke_budget": [_result("smoke_budget", "2026-12-01 08:00 UTC", cpu="Xeon")]}, quick=False)
    inference = page.split("## 4.")[1].split("## 5.")[0]
    assert "Kept from an earlier run" in inference and "inference at 2026-12-03" in inference
    assert "Kept from" not in page.split("## 4.")[0] and "Machine: CPU (2 cores), EPYC" in page
    assert "Measured on another machine: CPU (2 cores), Xeon" in page.split("## 6.")[1]
    assert "Not measured in this run" in page.split("## 1.")[1].split("## 2.")[0]
    assert "Collected by" not in page


def _tta(date, seeds_by_task, cpu="EPYC", vgg_epochs=None):
    curves = {seed: [[60.0, 0.80 + seed / 100], [120.0, 0.86 + seed / 100]] for seed in range(3)}
    return {**_result("time_to_accuracy", date, cpu), "settings": {"vgg_epochs": vgg_epochs},
            "tasks": {t: {"seeds": s, "curves": {str(seed): curves[seed] for seed in s}}
                      for t, s in seeds_by_task.items()}}


def test_time_to_accuracy_sittings_are_combined_newest_first(tmp_path):
    """The VGG-11 runs come from separate sittings: each (task, seed) is shown from the newest run that measured it."""
    runs = {"a-small": _tta("2026-12-03 10:00 UTC", {"lenet5": [0, 1, 2], "bilstm": [0, 1, 2]}),
            "b-vgg-epyc": _tta("2026-12-03 14:39 UTC", {"vgg11": [0], "peer": [0]}),
            "c-vgg-xeon": _tta("2026-12-04 19:40 UTC", {"vgg11": [0], "peer": [0]}, cpu="Xeon"),
            "d-seed1": _tta("2026-12-05 09:00 UTC", {"vgg11": [1]}, cpu="Xeon", vgg_epochs=2)}
    for name, r in runs.items():
        (tmp_path / f"time_to_accuracy-{name}.json").write_text(json.dumps(r))
    kept = run_all.earlier_results(tmp_path, "time_to_accuracy")
    assert [r["path"] for r in kept] == ["time_to_accuracy-d-seed1.json", "time_to_accuracy-c-vgg-xeon.json",
                                         "time_to_accuracy-a-small.json"]   # the EPYC sitting is superseded
    assert run_all.parts(runs["a-small"]) >= {("lenet5", 2), ("bilstm", 0)} and run_all.parts({}) == {None}
    page = run_all.markdown({"time_to_accuracy": [{**r, "kept": True} for r in kept]}, quick=False, collected=True)
    section = page.split("## 5.")[1].split("## 6.")[0]
    assert "From 3 runs, newest first" in section and "Kept from" not in page and "Collected by" in page
    assert section.index("2026-12-05 09:00") < section.index("2026-12-04 19:40") < section.index("2026-12-03 10:00")
    assert "Measured on another machine: CPU (2 cores), EPYC" in section and "14:39" not in section
    across = section.split("```text")[1]   # one summary over the sittings, before the runs' own reports
    assert "across the 2 runs, vgg11 seeds [0, 1]: final 86.50% (range 86.00%-87.00%)" in across
    assert ("seed 1: 87.00% after 2 epochs, 2.0 min of training, epochs fixed by --vgg-epochs, last weights with flip; "
            "crops padded by 2 (FAST; recipe not stored), on Xeon") in across   # no recipe in these results
    assert "seed 0: 86.00% after 2 epochs, 2.0 min of training, epochs planned once from the budget" in across
    assert "lenet5" not in across   # all its seeds come from one run


def test_the_kernel_bound_keeps_the_rest_of_the_step():
    b = {"step": 100.0, "convolutions": 70.0, "matrix products": 10.0, "data": 5.0}
    bound = kernel_bound(b, step_gflop=4.0, ceiling_gflop_per_s=100.0)   # 4 GFLOP in 80 ms: 50 GFLOP/s
    assert bound["gflop_per_s"] == pytest.approx(50.0) and bound["of_ceiling"] == pytest.approx(0.5)
    assert bound["bound_ms"] == pytest.approx(20.0 + 40.0)                 # the other 20 ms stay; 4 GFLOP at 100/s
    assert bound["bound_speedup"] == pytest.approx(100 / 60)
    at_ceiling = kernel_bound(b, step_gflop=8.0, ceiling_gflop_per_s=100.0)
    assert at_ceiling["of_ceiling"] == pytest.approx(1.0) and at_ceiling["bound_speedup"] == pytest.approx(1.0)


def test_collect_mode_measures_nothing_and_writes_the_page(tmp_path):
    (tmp_path / "inference-2026-12-03.json").write_text(json.dumps(_result("inference", "2026-12-03 10:00 UTC")))
    assert run_all.main(["--only", "--keep-earlier", "--out-dir", str(tmp_path)]) == 0
    page = (tmp_path / "RESULTS.md").read_text()
    assert "Collected by" in page and "inference at 2026-12-03" in page
    assert page.count("Not measured in this run") == len(run_all.BENCHMARKS) - 1
    with pytest.raises(SystemExit):
        run_all.main(["--only", "--out-dir", str(tmp_path)])   # runs nothing and keeps nothing: refused


@pytest.mark.slow
def test_every_benchmark_runs_in_quick_mode(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--out-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = (tmp_path / "RESULTS.md").read_text()
    for section in ("1. Input pipeline", "2. Trainer overhead", "3. Precision", "4. Inference", "5. Time to accuracy",
                    "6. The smoke budget", "7. The profiler's view"):
        assert f"## {section}" in results
    assert "Quick mode" in results and "**Failed**" not in results
    overhead = json.loads(next(tmp_path.glob("trainer_overhead-*.json")).read_text())
    assert set(overhead["models"]) == {"vgg11", "lenet5"}
    assert overhead["machine"]["versions"]["torch"]
    tta = json.loads(next(tmp_path.glob("time_to_accuracy-*.json")).read_text())
    assert set(tta["tasks"]) == {"lenet5", "bilstm", "vgg11", "peer"} and "peer_comparison" in tta
    profile = json.loads(next(tmp_path.glob("step_profile-*.json")).read_text())
    for row in profile["models"]["vgg11"]["median_ms_per_step"].values():   # the parts add up to the step
        assert sum(v for k, v in row.items() if k != "step") == pytest.approx(row["step"])
        assert row["convolutions"] > 0
    vgg = profile["models"]["vgg11"]   # VGG-11 at 32x32: about 0.31 GFLOP a forward pass per image (2 a multiply-add), 3 per step
    assert vgg["step_gflop"] == pytest.approx(3 * 0.306 * profile["settings"]["batch_size"], rel=0.1)
    assert vgg["kernel_bound"]["bound_speedup"] > 0 and profile["ceiling"]["gflop_per_s"] > 0


@pytest.mark.slow
def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    env = {**os.environ, "PY": sys.executable, "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "GPU check" in proc.stdout and "VGG-11 test accuracy" in proc.stdout
    assert (tmp_path / "time_to_accuracy_gpu.json").exists()
