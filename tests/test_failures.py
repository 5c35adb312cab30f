"""Fail loudly, never corrupt: diverged runs, two processes on one run, malformed inputs.

Each test failed on the code before the fix (what it caught is in its docstring).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from semibench import config
from semibench.config import ConfigError
from semibench.runs import RunDir, RunLock, is_done
from semibench.training import step as step_module
from semibench.training import train as train_module
from semibench.training.train import train


def tiny(**overrides):
    return config.resolve("tiny", {"task.name": "math", "loss.objective": "dpo", "train.sync_every": "inf", **overrides})


# ---- 1. diverged runs --------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, named", [
    ("loss.dpo_beta", "nan", "loss.dpo_beta"), ("loss.dpo_beta", "-0.1", "loss.dpo_beta"), ("optim.lr", "1e9", "optim.lr"),
    ("optim.lr", "inf", "optim.lr"), ("loss.kl_beta", "nan", "loss.kl_beta"), ("optim.grad_clip", "0", "optim.grad_clip"),
])
def test_out_of_domain_values_are_refused_at_config_time(key, value, named):
    """Before: beta = nan and lr = 1e9 trained to all-NaN weights and wrote DONE."""
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        tiny(**{key: value})


def test_a_non_finite_gradient_stops_the_run_at_that_step_and_keeps_the_last_good_state(tmp_path, monkeypatch):
    """Before: a NaN loss trained on, exported NaN weights and wrote DONE. Forced here from the third
    loss computed on by a loss that turns NaN (a real lr-driven divergence is the twin test below)."""
    real = step_module.unit_loss
    calls: list[int] = []

    def nan_from_the_third_call(loss_cfg, inputs):
        loss, metrics = real(loss_cfg, inputs)
        calls.append(1)
        return (loss * float("nan"), metrics) if len(calls) >= 3 else (loss, metrics)

    monkeypatch.setattr(step_module, "unit_loss", nan_from_the_third_call)
    cfg = tiny(**{"train.steps": 12, "train.resume_every": 1, "train.micro_batch_size": 64})
    with pytest.raises(ConfigError) as failure:
        train(cfg, tmp_path)
    message = str(failure.value)
    run = RunDir(tmp_path, cfg)
    logged = [r["step"] for r in run.read_metrics()]
    diverged = len(logged)  # every step before it was logged; it was not
    assert logged == list(range(diverged)) and 2 <= diverged < 12
    assert message.startswith(f"step {diverged} diverged: gradient norm nan") and "\n" not in message
    assert "optim.lr" in message and "loss.dpo_beta" in message
    assert not is_done(run.path)
    assert not run.checkpoints.exists()  # nothing exported, from that step or after
    assert f"state/step_{diverged:06d}" in message and (run.state(diverged) / "DONE").exists()  # the last good state


@pytest.mark.slow
def test_a_real_divergence_from_a_huge_learning_rate_is_caught(tmp_path):
    """The twin of the test above with no fake: lr 0.5 with clipping off blows the tiny policy up."""
    cfg = config.resolve("tiny", {"task.name": "math", "loss.objective": "grpo", "train.sync_every": "inf", "train.steps": 12,
                                  "optim.lr": 0.5, "optim.grad_clip": 1e30, "optim.weight_decay": 0, "loss.kl_beta": 0})
    with pytest.raises(ConfigError, match=r"^step \d+ diverged: gradient norm (nan|inf)"):
        train(cfg, tmp_path)
    assert not is_done(RunDir(tmp_path, cfg).path)


def test_eval_refuses_non_finite_and_truncated_weights(tmp_path):
    """Before: a NaN checkpoint scored 0.00 (a grid ranked it); a truncated file gave a 159-line traceback."""
    from semibench.evals.evaluate import check_weights
    from semibench.models import resolve_model

    source = Path(resolve_model("tiny"))
    for kind in ("nan", "truncated"):
        ckpt = tmp_path / kind
        ckpt.mkdir()
        for f in source.iterdir():
            if f.is_file():
                (ckpt / f.name).write_bytes(f.read_bytes())
        weights = ckpt / "model.safetensors"
        if kind == "nan":
            state = load_file(str(weights))
            name = sorted(state)[0]
            state[name] = torch.full_like(state[name], float("nan"))
            save_file(state, str(weights), metadata={"format": "pt"})
            with pytest.raises(ConfigError, match=f"tensor {name} holds NaN or inf"):
                check_weights(ckpt)
        else:
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
            with pytest.raises(ConfigError, match="model.safetensors is unreadable .*truncated"):
                check_weights(ckpt)
    check_weights(source)  # intact weights pass


# ---- 2. one process per run directory ---------------------------------------------------------------


HOLD = """
import sys, time
from semibench.runs import RunLock
lock = RunLock(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_process_on_a_live_run_refuses_naming_the_holder_and_a_dead_holder_blocks_nothing(tmp_path):
    """Before: the second process cleared the live run and both wrote DONE over interleaved metrics."""
    cfg = tiny(**{"train.steps": 2})
    run = RunDir(tmp_path, cfg)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"in use by PID {holder.pid} on host {socket.gethostname()}"):
            train(cfg, tmp_path)
        assert not run.path.exists()  # refused before touching the directory
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The OS dropped the dead holder's lock: the run now trains.
    assert is_done(train(cfg, tmp_path))


def test_the_lock_is_released_by_release_and_by_a_finished_run(tmp_path):
    path = tmp_path / "run"
    first = RunLock(path)
    with pytest.raises(ConfigError, match=f"PID {os.getpid()}"):
        RunLock(path)
    first.release()
    RunLock(path).release()


# ---- 3. scores that were silently NaN ---------------------------------------------------------------


@pytest.mark.parametrize("preference", [7, -3, "abc", [1, 2], None, float("nan")])
def test_alpaca_scoring_refuses_a_bad_preference_naming_file_row_and_field(tmp_path, preference):
    """Before: 7 or -3 gave `win_rate: NaN, n_total: 0` with exit 0; "abc", [1,2], null a traceback."""
    rows = [{"preference": 2.0}, {"preference": 1.0}, {"preference": preference}]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(rows))
    semibench = Path(sys.executable).parent / "semibench"  # the installed console script
    result = subprocess.run([str(semibench), "score", "alpaca_eval", "--annotations", str(path)],
                            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and "row 2" in lines[0] and "'preference'" in lines[0], result.stderr
    assert "NaN" not in result.stdout


def test_valid_alpaca_preferences_still_score():
    from semibench.evals.scoring.alpaca import alpaca_winrate

    result = alpaca_winrate([{"preference": 2.0}, {"preference": 1.0}, {"preference": 1.5}, {"preference": 0}])
    assert result["n_total"] == 4 and result["win_rate"] == pytest.approx(50.0)


# ---- 4. one line where a traceback was ------------------------------------------------------------


@pytest.mark.parametrize("content, says", [
    (b'[{"question": "1+1", "answer": "2"}]\n', "is a JSON list, not an object"),
    (b'1\n2\n', "is a JSON int, not an object"),
    (bytes(range(256)) * 4, "is not UTF-8 text"),
])
def test_a_malformed_training_file_is_one_line(tmp_path, content, says):
    """Before: TypeError / UnicodeDecodeError tracebacks."""
    data = tmp_path / "train.jsonl"
    data.write_bytes(content)
    with pytest.raises(ConfigError, match=says) as failure:
        train(tiny(**{"task.math_data": str(data)}), tmp_path / "runs")
    assert str(data) in str(failure.value) and "\n" not in str(failure.value)


def test_an_openai_judge_whose_endpoint_refuses_fails_at_once_with_the_fix_first(monkeypatch):
    """Before: 45 s of retries, then a 175-line traceback whose last line named the fix."""
    from semibench.evals.judges import make_judge

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    judge = make_judge("openai:gpt-4o")
    tick = time.monotonic()
    with pytest.raises(ConfigError, match=r"^judge openai:gpt-4o: check OPENAI_BASE_URL: cannot reach"):
        judge.alpaca_preferences(["say hi"], ["hi"], ["hello"])
    assert time.monotonic() - tick < 5


# ---- 5. correct but very large answers --------------------------------------------------------------


def test_a_correct_5000_digit_answer_scores_1():
    """Before: Python's 4,300-digit int/str limit made it 0."""
    from semibench.rewards.math import MathVerifier

    gold = "9" * 5000
    with MathVerifier(num_workers=1, timeout_s=30) as verifier:
        assert verifier([f"The answer is \\boxed{{{gold}}}", "\\boxed{1}"], [gold, gold]) == [1.0, 0.0]


def test_a_disk_too_small_for_the_run_stops_it_before_training_with_one_line(tmp_path, monkeypatch):
    """The check compares the real free space with what the run will write (the states it holds + exports)."""
    from semibench.training import checkpoint

    policy = torch.nn.Linear(1000, 1000)  # 4 MB of fp32 weights
    weights = checkpoint.weight_bytes(policy)
    needed = checkpoint.bytes_needed(weights, checkpoints=2, window_weights=True)
    assert needed == 4_004_000 * (2 * 4 + 2)
    # Only the states a run really saves count: a run shorter than resume_every saves none (CI's 2-step
    # runs on a 3.5 GB disk were refused for 2 states they never write), one save holds one.
    assert [checkpoint.states_held(10, steps) for steps in (2, 10, 11, 20, 21, 200)] == [0, 0, 1, 1, 2, 2]
    assert checkpoint.states_held(0, 200) == 0
    assert checkpoint.bytes_needed(weights, checkpoints=1, window_weights=False, states=0) == 4_004_000
    checkpoint.check_free_space(tmp_path, needed)  # this disk has 40 MB free
    free = __import__("shutil").disk_usage(tmp_path).free
    with pytest.raises(ConfigError) as failure:
        checkpoint.check_free_space(tmp_path, free + 10**12)
    assert "GB free on the disk of" in str(failure.value) and "--out" in str(failure.value) and "\n" not in str(failure.value)
    # Through `train`: nothing trained, nothing that looks done.
    monkeypatch.setattr(train_module, "bytes_needed", lambda *a, **k: free + 10**12)
    cfg = tiny()
    with pytest.raises(ConfigError, match="GB free on the disk of"):
        train(cfg, tmp_path)
    run = RunDir(tmp_path, cfg)
    assert not is_done(run.path) and not (run.path / "metrics.jsonl").exists()
