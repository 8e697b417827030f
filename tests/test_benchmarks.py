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
from time_to_accuracy import accuracy_at, time_to  # noqa: E402


def test_time_to_accuracy_reads_the_first_epoch_at_the_threshold():
    curve = [(10.0, 0.70), (20.0, 0.86), (30.0, 0.84), (40.0, 0.91)]
    assert time_to(curve, 0.85) == 20.0
    assert time_to(curve, 0.90) == 40.0
    assert time_to(curve, 0.95) is None
    assert accuracy_at(curve, 35.0) == 0.84   # the last epoch that ended within the time
    assert accuracy_at(curve, 5.0) is None


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
    kept = run_all.earlier_result(tmp_path, "inference")
    assert kept["date"].startswith("2026-12-03") and run_all.earlier_result(tmp_path, "smoke_budget") is None
    page = run_all.markdown({"trainer_overhead": _result("trainer_overhead", "2026-12-04 08:00 UTC"),
                             "inference": {**kept, "kept": True},
                             "smoke_budget": _result("smoke_budget", "2026-12-01 08:00 UTC", cpu="Xeon")}, quick=False)
    inference = page.split("## 4.")[1].split("## 5.")[0]
    assert "Kept from an earlier run" in inference and "inference at 2026-12-03" in inference
    assert "Kept from" not in page.split("## 4.")[0] and "Machine: CPU (2 cores), EPYC" in page
    assert "Measured on another machine: CPU (2 cores), Xeon" in page.split("## 6.")[1]
    assert "Not measured in this run" in page.split("## 1.")[1].split("## 2.")[0]


@pytest.mark.slow
def test_every_benchmark_runs_in_quick_mode(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--out-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = (tmp_path / "RESULTS.md").read_text()
    for section in ("1. Input pipeline", "2. Trainer overhead", "3. Precision", "4. Inference", "5. Time to accuracy",
                    "6. The smoke budget"):
        assert f"## {section}" in results
    assert "Quick mode" in results and "**Failed**" not in results
    overhead = json.loads(next(tmp_path.glob("trainer_overhead-*.json")).read_text())
    assert set(overhead["models"]) == {"vgg11", "lenet5"}
    assert overhead["machine"]["versions"]["torch"]
    tta = json.loads(next(tmp_path.glob("time_to_accuracy-*.json")).read_text())
    assert set(tta["tasks"]) == {"lenet5", "bilstm", "vgg11", "peer"} and "peer_comparison" in tta


@pytest.mark.slow
def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    env = {**os.environ, "PY": sys.executable, "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "GPU check" in proc.stdout and "VGG-11 test accuracy" in proc.stdout
    assert (tmp_path / "time_to_accuracy_gpu.json").exists()
