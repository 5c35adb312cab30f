"""Kill a run with SIGKILL, run the same command again: it resumes and ends bit-identical."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ARGS = ["train", "--preset", "tiny", "--task", "math", "--objective", "dpo", "--sync-every", "4", "--steps", "7", "--set", "train.resume_every=1"]
TIMING = ("time/", "tokens_per_s")


def _command(out: Path) -> list[str]:
    return [sys.executable, "-m", "semibench", *ARGS, "--out", str(out)]


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


def _kill_after(out: Path, num_rows: int) -> None:
    """Start the run, SIGKILL it once `num_rows` metric rows exist (mid-step: the state may lag)."""
    proc = subprocess.Popen(_command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        rows = list(out.glob("*/metrics.jsonl"))
        if rows and len(rows[0].read_text().splitlines()) >= num_rows:
            break
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    subprocess.run(_command(out), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    [run] = list(out.iterdir())
    return run


@pytest.mark.parametrize("kill_at_rows", [2, 6])  # 6: step 5, inside the window of version 4
def test_sigkill_then_resume_is_identical(tmp_path, uninterrupted, kill_at_rows):
    _kill_after(tmp_path, kill_at_rows)
    [run] = list(tmp_path.iterdir())
    assert not (run / "DONE").exists()
    subprocess.run(_command(tmp_path), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert (run / "DONE").exists() and run.name == uninterrupted.name
    assert _metrics(run) == _metrics(uninterrupted)
    resumed = load_file(run / "checkpoints" / "step_000007" / "model.safetensors")
    whole = load_file(uninterrupted / "checkpoints" / "step_000007" / "model.safetensors")
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert [r["generator_version"] for r in _metrics(run)] == [0, 0, 0, 0, 4, 4, 4]
