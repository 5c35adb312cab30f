"""Kill a run with SIGKILL, run it again: it resumes and ends bit-identical to an uninterrupted run.

With s = 4, a kill at step 5 resumes inside the window of version 4: the generator must get back
version 4's weights (saved with the state), not the policy's latest, or the rollouts differ.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from semibench.cli import app

ARGS = ["train", "--preset", "tiny", "--task", "math", "--objective", "dpo", "--sync-every", "4", "--steps", "7", "--set", "train.resume_every=1"]
TIMING = ("time/", "tokens_per_s")
TORCHRUN_2 = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]  # a free port per run


def _command(out: Path, launcher=(sys.executable,)) -> list[str]:
    return [*launcher, "-m", "semibench", *ARGS, "--out", str(out)]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 0, done.stderr[-4000:]


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / "step_000007" / "model.safetensors")


def _kill_after(cmd: list[str], out: Path, num_rows: int) -> Path:
    """Start the run, SIGKILL it (launcher and every rank at once) once `num_rows` metric rows exist.

    Mid-step: the newest state may lag the metrics by a step. Returns the newest complete state.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        rows = list(out.glob("*/metrics.jsonl"))
        if rows and len(rows[0].read_text().splitlines()) >= num_rows:
            break
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed")
        time.sleep(0.05)
    ranks = _descendants(proc.pid)  # before the launcher dies: orphans are reparented and lose the link
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in ranks:  # the copy of the crashed run below must not race a rank still finishing a write
        _kill_and_reap(pid)
    proc.wait()
    [run] = _run_dirs(out)
    assert not (run / "DONE").exists()
    # Normally only the newest complete state is kept; a kill between writing the next one and pruning the
    # previous leaves both (seen under load), and resume takes the newest.
    complete = sorted(p for p in (run / "state").iterdir() if (p / "DONE").exists())
    assert complete, "no complete state to resume from"
    return complete[-1]


def _descendants(pid: int) -> list[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        children = [p for p, ppid in parents.items() if ppid in frontier]
        out += children
        frontier = children
    return out


def _kill_and_reap(pid: int, timeout_s: float = 30.0) -> None:
    """SIGKILL `pid` and wait until it is gone or a zombie: no write of it can land after this."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} survived SIGKILL for {timeout_s:.0f} s")


def _run_dirs(out: Path) -> list[Path]:
    """The run directories under `out`: a killed run also leaves its `.<id>.lock` beside it (stale, harmless)."""
    return [p for p in out.iterdir() if p.is_dir()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    _run(_command(out))
    [run] = _run_dirs(out)
    assert (run / "DONE").exists() and not (run / "state").exists()  # resumable state is dropped once the run is done
    return run


@pytest.mark.parametrize("kill_at_rows,how", [(2, "same command"), (6, "--resume")])  # 6: step 5, inside the window of version 4
def test_sigkill_then_resume_is_identical(tmp_path, uninterrupted, kill_at_rows, how):
    state = _kill_after(_command(tmp_path), tmp_path, kill_at_rows)
    trainer = json.loads((state / "trainer.json").read_text())
    if kill_at_rows == 6:  # the state really is mid-window, with the window's weights kept
        assert trainer["step"] in (5, 6) and trainer["generator_version"] == 4 and trainer["window_weights"]
    [run] = _run_dirs(tmp_path)
    assert (tmp_path / f".{run.name}.lock").exists()  # the killed holder's lock file: stale, it must not block the resume
    _run(_command(tmp_path) if how == "same command" else [sys.executable, "-m", "semibench", "train", "--resume", str(run)])
    assert (run / "DONE").exists() and run.name == uninterrupted.name
    assert not (tmp_path / f".{run.name}.lock").exists()  # released and removed by the run that finished
    assert _metrics(run) == _metrics(uninterrupted)
    resumed, whole = _final_weights(run), _final_weights(uninterrupted)
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert [r["generator_version"] for r in _metrics(run)] == [0, 0, 0, 0, 4, 4, 4]


def test_two_ranks_sigkill_mid_window_then_resume_is_identical(tmp_path):
    """The same under torchrun with 2 gloo ranks: sharded DCP state, every rank killed at once."""
    _run(_command(tmp_path / "whole", TORCHRUN_2))
    state = _kill_after(_command(tmp_path / "killed", TORCHRUN_2), tmp_path / "killed", 6)
    trainer = json.loads((state / "trainer.json").read_text())
    assert trainer["world_size"] == 2 and trainer["generator_version"] == 4 and trainer["window_weights"]
    assert {p.name for p in state.glob("*.distcp")} == {"__0_0.distcp", "__1_0.distcp"}  # each rank wrote its shards
    shutil.copytree(tmp_path / "killed", tmp_path / "on_one")  # the same crash, resumed by one process below
    _run(_command(tmp_path / "killed", TORCHRUN_2))
    [run], [whole] = _run_dirs(tmp_path / "killed"), _run_dirs(tmp_path / "whole")
    assert _metrics(run) == _metrics(whole)
    assert [r["generator_version"] for r in _metrics(run)] == [0, 0, 0, 0, 4, 4, 4]
    resumed, uninterrupted_weights = _final_weights(run), _final_weights(whole)
    assert all(torch.equal(resumed[k], uninterrupted_weights[k]) for k in uninterrupted_weights)

    # DCP reshards: the 2-rank state resumes in one process, on the same rollouts, to the same
    # weights up to float summation order.
    _run(_command(tmp_path / "on_one"))
    [run_one] = _run_dirs(tmp_path / "on_one")
    rollout_keys = ("reward", "rollout_length", "generator_version", "num_units", "chosen_length", "rejected_length")
    assert [{k: r.get(k) for k in rollout_keys} for r in _metrics(run_one)] == [{k: r.get(k) for k in rollout_keys} for r in _metrics(whole)]
    on_one = _final_weights(run_one)
    assert max((on_one[k] - uninterrupted_weights[k]).abs().max().item() for k in on_one) < 1e-4


def test_resume_flag_rejects_a_missing_run_and_extra_options(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["train", "--resume", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and missing.output.strip().startswith("error: no run to resume at")
    mixed = runner.invoke(app, ["train", "--resume", str(tmp_path), "--steps", "3"])
    assert mixed.exit_code == 2 and "drop the other options" in mixed.output
    assert len(mixed.output.strip().splitlines()) == 1


def test_window_weights_are_kept_only_when_a_state_lands_mid_window():
    from semibench.training.checkpoint import saves_mid_window

    assert saves_mid_window(4, 1, 7)  # states at 5 and 6 fall in the window of version 4
    assert saves_mid_window(100, 50, 1000)  # the state at 50 is mid-window, but still version 0; 150 is not
    assert not saves_mid_window(10, 50, 1000)  # every state is on a window boundary
    assert not saves_mid_window(4, 4, 7)  # the only state, at 4, opens a window
    assert not saves_mid_window(3, 2, 4)  # the state at 2 is in version 0's window: the initial model
    assert not saves_mid_window(1, 1, 10) and not saves_mid_window(None, 1, 10) and not saves_mid_window(4, 0, 7)
