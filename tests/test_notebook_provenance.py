"""Provenance that ties a page's outputs to code: the dlbook hash, commit/dirty detection, the note's words."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dlbook.notebook import (
    LABELS_MIME,
    RESULTS_MIME,
    code_version,
    dlbook_sha256,
    format_duration,
    format_result,
    record,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import execute_notebooks  # noqa: E402

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def make_package(root: Path) -> Path:
    pkg = root / "dlbook"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""pkg"""\n')
    (pkg / "models" / "lenet.py").write_text("X = 1\n")
    return pkg


# --- dlbook_sha256 -------------------------------------------------------------------------------------------------

def test_hash_is_stable_and_ignores_what_is_not_source(tmp_path):
    pkg = make_package(tmp_path)
    first = dlbook_sha256(pkg)
    assert len(first) == 64 and dlbook_sha256(pkg) == first
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0compiled")
    (pkg / "models" / "notes.txt").write_text("not source")
    assert dlbook_sha256(pkg) == first


def test_hash_changes_when_a_dlbook_file_changes(tmp_path):
    pkg = make_package(tmp_path)
    before = dlbook_sha256(pkg)
    (pkg / "models" / "lenet.py").write_text("X = 2\n")
    edited = dlbook_sha256(pkg)
    assert edited != before
    (pkg / "models" / "lenet.py").write_text("X = 1\n")
    assert dlbook_sha256(pkg) == before, "same bytes, same hash"
    (pkg / "models" / "vgg.py").write_text("")
    assert dlbook_sha256(pkg) != before, "an added (even empty) module changes the hash"


def test_hash_sees_a_moved_file(tmp_path):
    pkg = make_package(tmp_path)
    before = dlbook_sha256(pkg)
    (pkg / "models" / "lenet.py").rename(pkg / "lenet.py")
    assert dlbook_sha256(pkg) != before


def test_hash_of_the_real_package_and_a_clear_error(tmp_path):
    assert dlbook_sha256() == dlbook_sha256(ROOT / "dlbook")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        dlbook_sha256(tmp_path / "nowhere")


# --- code_version ----------------------------------------------------------------------------------------------------

def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@needs_git
def test_commit_and_dirty_detection_in_a_temp_repo(tmp_path):
    make_package(tmp_path)
    (tmp_path / "README.md").write_text("readme\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    head = git(tmp_path, "rev-parse", "HEAD")

    clean = code_version(tmp_path)
    assert clean["commit"] == head and clean["dirty"] is False and clean["dirty_paths"] == []
    assert clean["dlbook_sha256"] == dlbook_sha256(tmp_path / "dlbook")

    (tmp_path / "README.md").write_text("changed\n")
    outside = code_version(tmp_path)
    assert outside["dirty"] is True and outside["dirty_paths"] == []

    (tmp_path / "dlbook" / "models" / "lenet.py").write_text("X = 3\n")
    (tmp_path / "dlbook" / "new.py").write_text("")                     # untracked source counts too
    inside = code_version(tmp_path)
    assert inside["dirty"] is True
    assert inside["dirty_paths"] == ["dlbook/models/lenet.py", "dlbook/new.py"]
    assert inside["dlbook_sha256"] != clean["dlbook_sha256"]


def test_outside_a_git_checkout(tmp_path):
    make_package(tmp_path)
    version = code_version(tmp_path)
    assert version["commit"] is None and version["dirty"] is None and version["dirty_paths"] == []
    assert version["dlbook_sha256"] == dlbook_sha256(tmp_path / "dlbook")


# --- labels and the note ---------------------------------------------------------------------------------------------

def test_durations_under_ten_seconds_keep_their_digits():
    assert format_duration(0.213) == "0.213 s"   # a sub-second cold start must not read "0 s"
    assert format_duration(2.04) == "2.04 s"
    assert format_duration(59.6) == "1 min 0 s" and format_duration(190.2) == "3 min 10 s"


def test_format_result_reads_units_and_labels():
    assert format_result("train_time_min", 41.1) == "train time: 41.1 min"
    assert format_result("train_time_s", 198.7, "training time") == "training time: 3 min 19 s"
    assert format_result("max_T", 2048, "longest sequence T") == "longest sequence T: 2,048"
    assert format_result("test_accuracy", 0.9116) == "test accuracy: 91.16%"
    assert format_result("attention_at_max_T_ms", 127.63, "attention time at the longest T") == \
        "attention time at the longest T: 127.6 ms"


def test_only_shares_are_shown_as_percentages():
    """A dropout of 0.5 or a learning rate of 0.01 is a number: 4.2's note once said "embedding dropout: 50.00%"."""
    assert format_result("rnn_embedding_dropout", 0.5, "BiLSTM embedding dropout") == "BiLSTM embedding dropout: 0.5"
    assert format_result("lr_range_suggested_lr", 0.003) == "lr range suggested lr: 0.003"
    assert format_result("finetuned_test_accuracy", 0.8764) == "finetuned test accuracy: 87.64%"
    assert format_result("macro_f1", 0.8085) == "macro f1: 80.85%"
    assert format_result("duplicate_test_fraction", 0.033) == "duplicate test fraction: 3.30%"
    assert format_result("behaviour_pass_rate", 0.8134, "behavioural tests passed") == "behavioural tests passed: 81.34%"


def test_record_takes_labels_and_rejects_bad_ones(capsys):
    record(train_time_s=198.7, test_accuracy=0.9116, labels={"train_time_s": "training time"})
    out = capsys.readouterr().out
    assert "training time: 3 min 19 s" in out and "test_accuracy: 0.9116" in out
    with pytest.raises(ValueError, match="not recorded"):
        record(test_accuracy=0.9, labels={"tset_accuracy": "test accuracy"})
    with pytest.raises(TypeError, match="non-empty string"):
        record(test_accuracy=0.9, labels={"test_accuracy": ""})


def test_labels_ride_in_the_output_metadata():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("record(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "..."}, metadata={
        RESULTS_MIME: {"max_T": 2048}, LABELS_MIME: {"max_T": "longest sequence T"}})]
    nb.cells.append(cell)
    assert execute_notebooks.collect(nb, LABELS_MIME) == {"max_T": "longest sequence T"}


def meta(**changes) -> dict:
    base = {
        "budget": "full", "seed": 0, "device_name": "AMD EPYC CPU (2 cores, bf16)", "wall_time_s": 211.3,
        "executed_at": "2026-11-28T00:05:08+00:00", "versions": {"python": "3.11.7", "torch": "2.14.1"},
        "mean_load": 1.23, "cpu_count": 2, "commit": "ffe1eaf35a8fd8cbbeb3f3d44ee9648c626a0679", "dirty": False,
        "dirty_paths": [], "dlbook_sha256": "ab" * 32,
        "results": {"test_accuracy": 0.9116, "train_time_min": 41.1, "max_T": 2048},
        "labels": {"max_T": "longest sequence T"},
    }
    base.update(changes)
    return base


def test_note_names_the_code_and_always_the_load():
    text = execute_notebooks.provenance_text(meta())
    assert "commit `ffe1eaf35a8f`, clean tree" in text and "SHA-256 `abababababababab`" in text
    assert "Mean load during the run: 1.23 on 2 cores." in text and "shared this machine" not in text
    busy = execute_notebooks.provenance_text(meta(mean_load=3.95))
    assert "Mean load during the run: 3.95 on 2 cores" in busy and "shared this machine" in busy


def test_note_says_when_the_tree_was_dirty_or_not_a_checkout():
    dirty = execute_notebooks.provenance_text(meta(dirty=True, dirty_paths=["dlbook/data/text.py"]))
    assert "uncommitted changes to `dlbook/data/text.py`" in dirty
    elsewhere = execute_notebooks.provenance_text(meta(dirty=True))
    assert "uncommitted changes outside `dlbook/`" in elsewhere
    assert "not run from a git checkout" in execute_notebooks.provenance_text(meta(commit=None, dirty=None))


def test_note_prints_readable_labels_never_raw_keys():
    text = execute_notebooks.provenance_text(meta())
    assert "test accuracy: 91.16%" in text and "train time: 41.1 min" in text
    assert "longest sequence T: 2,048" in text
    assert "train time min" not in text and "max T 2048" not in text and "max_T" not in text
