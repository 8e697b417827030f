"""dlbook.train.ddp: torchrun-launched DDP ends with the parameters of one process, on one node or two, after a kill.

The reference is the same script run as one process with the whole batch (no process group);
the DDP runs are real ``torchrun`` launches with gloo on this CPU.
"""

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import torch

import dlbook
from dlbook.files import load_checked
from dlbook.train import ddp

ARGS = ["--n-train", "256", "--batch-size", "64", "--epochs", "2", "--seed", "3"]  # 8 steps of 64 examples
ROOT = Path(dlbook.__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                            "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _torchrun(out, extra=(), timeout=300, **launcher):  # generous: a loaded 2-core CI box is slow to start torch
    cmd = ddp.torchrun_command(out, [*ARGS, *extra], **launcher)
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True), timeout  # its own process group: killed whole on a timeout


def _communicate(proc, timeout):
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers
        proc.communicate()
        raise


def _finish(proc_timeout):
    proc, timeout = proc_timeout
    output = _communicate(proc, timeout)
    assert proc.returncode == 0, output[-3000:]
    return output


def _max_diff(a: Path, b: Path) -> float:
    """Independent of ddp.max_param_diff: over the flattened parameter vectors."""
    pa, pb = load_checked(a / "params.pt"), load_checked(b / "params.pt")
    assert pa.keys() == pb.keys()
    diff = (torch.cat([pa[k].flatten() for k in pa]) - torch.cat([pb[k].flatten() for k in pa])).abs().max().item()
    assert ddp.max_param_diff(a, b) == pytest.approx(diff, abs=1e-12)
    return diff


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process, the whole batch of 64 per step, no process group."""
    out = tmp_path_factory.mktemp("single")
    assert ddp.main(["--out", str(out), *ARGS]) == 0
    return out


@pytest.fixture(scope="module")
def two_procs(tmp_path_factory):
    out = tmp_path_factory.mktemp("two")
    _finish(_torchrun(out))
    return out


def test_single_process_run_writes_params_and_summary(single):
    summary = json.loads((single / "summary.json").read_text())
    assert (summary["world_size"], summary["steps"], summary["examples"]) == (1, 8, 256)
    assert summary["examples_per_second"] == pytest.approx(8 * 64 / summary["seconds"])
    params = load_checked(single / "params.pt")
    assert set(params) == set(ddp.LeNet5().state_dict())
    assert summary["final_train_loss"] < 2.3  # it trained (chance level is log 10 = 2.30)


def test_resume_in_one_process_is_exact(single, tmp_path):
    """Stop after epoch 1, resume with --resume to epoch 2: bit-for-bit the uninterrupted run."""
    assert ddp.main(["--out", str(tmp_path), *ARGS[:-4], "--epochs", "1", "--seed", "3"]) == 0
    assert ddp.main(["--out", str(tmp_path), *ARGS, "--resume"]) == 0
    resumed = json.loads((tmp_path / "summary.json").read_text())
    assert resumed["resumed"] is True and resumed["steps"] == 8  # 4 steps restored, 4 trained
    assert resumed["examples_per_second"] == pytest.approx(4 * 64 / resumed["seconds"])
    assert _max_diff(tmp_path, single) == 0.0


@pytest.mark.slow
def test_two_processes_end_with_the_parameters_of_one(single, two_procs):
    summary = json.loads((two_procs / "summary.json").read_text())
    assert (summary["world_size"], summary["backend"], summary["steps"]) == (2, "gloo", 8)
    diff = _max_diff(two_procs, single)
    print(f"max |param(2 processes) - param(1 process)| = {diff:.3g}")
    assert diff < 1e-5
    # the check can fail: a different seed's run is far away
    assert diff < 1e-3 * _max_diff_to_other_seed(single)


def _max_diff_to_other_seed(single) -> float:
    other = single.parent / "other_seed"
    if not (other / "params.pt").exists():
        ddp.main(["--out", str(other), *ARGS[:-1], "4"])
    return _max_diff(other, single)


@pytest.mark.slow
def test_two_nodes_by_c10d_rendezvous_match_one_process(single, tmp_path):
    port = _free_port()
    nodes = [_torchrun(tmp_path, nnodes=2, nproc_per_node=1, node_rank=r, rdzv_endpoint=f"127.0.0.1:{port}")
             for r in (0, 1)]
    for node in nodes:
        _finish(node)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2
    diff = _max_diff(tmp_path, single)
    print(f"max |param(2 nodes) - param(1 process)| = {diff:.3g}")
    assert diff < 1e-5


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_resumes_from_the_checkpoint(single, two_procs, tmp_path):
    """Rank 1 SIGKILLs itself at step 6 (epoch 2); torchrun restarts the group, which resumes from epoch 1."""
    output = _finish(_torchrun(tmp_path, extra=["--kill-at-step", "6"], max_restarts=1))
    assert "exitcode: -9" in output  # torchrun saw the SIGKILL ...
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["restarts"] == 1 and summary["resumed"] is True  # ... restarted, and the run resumed
    assert _max_diff(tmp_path, two_procs) == 0.0  # exactly the uninterrupted 2-process run
    assert _max_diff(tmp_path, single) < 1e-5


@pytest.mark.slow
def test_without_restarts_the_kill_fails_the_run(tmp_path):
    proc, timeout = _torchrun(tmp_path, extra=["--kill-at-step", "2"], max_restarts=0)
    output = _communicate(proc, timeout)
    assert proc.returncode != 0 and "exitcode: -9" in output, output[-3000:]
    assert not (tmp_path / "params.pt").exists()


def test_bad_arguments_are_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="does not split evenly over 3 processes"):
        ddp.train(ddp.parse_args(["--out", str(tmp_path), "--batch-size", "64"]))
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ValueError, match="smaller than one batch"):
        ddp.train(ddp.parse_args(["--out", str(tmp_path), "--n-train", "10", "--batch-size", "64"]))
    with pytest.raises(ValueError, match="at least one"):
        ddp.make_data("synthetic", 0, seed=0)
    with pytest.raises(ValueError, match="needs rdzv_endpoint"):
        ddp.torchrun_command(tmp_path, nnodes=2)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs CUDA"):
            ddp.train(ddp.parse_args(["--out", str(tmp_path), "--backend", "nccl"]))
