"""Off-policy diagnostics of a run: the generator-trainer mismatch split into the engine's numerics
and the window's lag, the importance weights' effective sample size, the generator version of the
trained pairs, and each kind's share of prompts with signal."""

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from semibench import config
from semibench.training.train import train

TIMING = ("time/", "tokens_per_s")


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _run(tmp_path, **overrides):
    cfg = config.resolve("tiny", {"task.name": "if", "loss.objective": "dpo", **overrides})
    return _rows(train(cfg, tmp_path / "runs"))


def test_online_has_no_lag_and_all_mismatch_is_the_engines(tmp_path):
    rows = _run(tmp_path, **{"train.sync_every": "1", "train.steps": 3})
    trained = [r for r in rows if not r["skipped"]]
    assert len(trained) == 3
    for r in trained:
        assert r["mismatch_kl_lag"] == 0.0  # s = 1: the policy is the window's weights, by construction
        assert r["mismatch_kl_engine"] == r["mismatch_kl"]
        assert 0.0 < r["is_ess"] <= 1.0 + 1e-12
        assert r["generator_version_min"] == r["generator_version_max"] == r["step"]


@pytest.mark.parametrize("ref_sync", ["true", "false"])  # the window's weights: the reference's, or a copy of their own
def test_semi_online_mismatch_is_lag_not_engine(tmp_path, ref_sync):
    """s = 2 over 4 steps: steps 1 and 3 train on rollouts one update old. The tiny generator is fp32
    on the trainer's weights, so the engine term is ~0 and the lag carries the mismatch. At step 3 the
    window's weights are version 2's, not the initial model's (the reference without ref_sync)."""
    rows = _run(tmp_path, **{"train.sync_every": "2", "train.steps": 4, "train.ref_sync": ref_sync})
    assert all(not r["skipped"] for r in rows)
    assert [r["staleness"] for r in rows] == [0, 1, 0, 1]
    for r in rows:
        assert r["mismatch_kl_engine"] == pytest.approx(0.0, abs=1e-5)
        assert r["generator_version_min"] == r["generator_version_max"] == r["generator_version"]
        if r["staleness"] == 0:
            assert r["mismatch_kl_lag"] == 0.0
        else:
            assert r["mismatch_kl_lag"] > 1e-4
            assert r["mismatch_kl_lag"] == pytest.approx(r["mismatch_kl"], rel=1e-2, abs=1e-6)
    if ref_sync == "false":  # the reference stayed the initial model: its KL is not the lag
        assert rows[3]["kl"] > 2 * rows[3]["mismatch_kl_lag"]
    # A stale window moves the importance weights off 1: the ESS drops below the fresh steps'.
    assert all(0.0 < r["is_ess"] <= 1.0 + 1e-12 for r in rows)
    assert rows[0]["is_ess"] == pytest.approx(1.0, abs=1e-4)  # step 0: generator = policy, all weights 1


def test_mixed_runs_log_each_kinds_share_of_prompts_with_signal(tmp_path):
    rows = _run(tmp_path, **{"task.name": "mixed", "train.steps": 3})
    math_counts = [2, 3, 3]  # 4 prompts a step at 2:1 (tasks.PromptSampler)
    for r, m in zip(rows, math_counts):
        assert {"frac_valid_prompts/math", "frac_valid_prompts/if"} <= set(r)
        overall = (r["frac_valid_prompts/math"] * m + r["frac_valid_prompts/if"] * (4 - m)) / 4
        assert r["frac_valid_prompts"] == pytest.approx(overall)
    plain = _run(tmp_path / "plain", **{"train.steps": 1})
    assert not any(k.startswith("frac_valid_prompts/") for k in plain[0])


def test_resumed_mid_window_lag_uses_the_kept_window_weights(tmp_path, monkeypatch):
    """Without ref_sync the window's weights live in a module of their own; a resume inside the
    window must restore it from the state, or the lag (and so the metrics) would differ."""
    cfg = config.resolve("tiny", {"task.name": "if", "loss.objective": "dpo", "train.sync_every": "4", "train.ref_sync": "false",
                                  "train.steps": 7, "train.resume_every": 1})
    whole = train(cfg, tmp_path / "whole")
    monkeypatch.setattr("semibench.training.train.drop_states", lambda root: None)  # a killed run never gets to drop them
    run = train(cfg, tmp_path / "killed")
    monkeypatch.undo()
    (run / "DONE").unlink()  # as if killed after the state at step 6, inside the window of version 4
    trainer = json.loads((run / "state" / "step_000006" / "trainer.json").read_text())
    assert trainer["generator_version"] == 4 and trainer["window_weights"]
    train(cfg, tmp_path / "killed")
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]  # noqa: E731
    assert strip(_rows(run)) == strip(_rows(whole))
    assert _rows(run)[6]["mismatch_kl_lag"] > 1e-4
    a = load_file(run / "checkpoints" / "step_000007" / "model.safetensors")
    b = load_file(whole / "checkpoints" / "step_000007" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_staleness_figure_counts_pairs_per_staleness_and_dynamics_draw_the_diagnostics(tmp_path):
    from semibench.reports.plots import write_plots
    from tests.report_fixtures import make_run

    root = tmp_path / "runs"
    frac = [1.0, 0.5, 0.25, 0.0]  # 4 prompts a step (tiny): 4, 2, 1 and 0 pairs
    extra = lambda step: {"frac_valid_prompts": frac[step], "mismatch_kl_engine": 0.5, "mismatch_kl_lag": 0.1 * step, "is_ess": 1.0 - 0.1 * step}  # noqa: E731
    semi = make_run(root, "math", "dpo", "2", extra_metrics=extra)
    offline = make_run(root, "math", "dpo", "inf", extra_metrics=extra)
    out = tmp_path / "fig"
    drawn = write_plots(root, out)
    assert sorted(drawn["staleness_math"]) == sorted([semi.name, offline.name])
    assert (out / "staleness_math.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.reader((out / "staleness_math.csv").read_text().splitlines()))
    assert rows[0] == ["figure", "panel", "run_id", "label", "step", "value"]
    counts = lambda run: {int(r[4]): float(r[5]) for r in rows[1:] if r[2] == run.name}  # noqa: E731
    assert counts(semi) == {0: 5.0, 1: 2.0}  # staleness 0 at steps 0 and 2, 1 at steps 1 and 3
    assert counts(offline) == {0: 4.0, 1: 2.0, 2: 1.0, 3: 0.0}
    assert "![staleness_math](staleness_math.png)" in (out / "figures.md").read_text()
    dynamics = list(csv.reader((out / "dynamics_math.csv").read_text().splitlines()))
    assert {"mismatch_kl_engine", "mismatch_kl_lag", "is_ess"} <= {r[1] for r in dynamics}


def test_two_ranks_keep_the_window_module_sharded_and_agree(tmp_path):
    """Without ref_sync the window's weights are a third FSDP2 module, synced shard by shard and run as
    a collective: 2 gloo ranks give the lag and ESS of one process, up to float summation order."""
    import subprocess
    import sys

    args = ["-m", "semibench", "train", "--preset", "tiny", "--task", "if", "--objective", "dpo", "--sync-every", "2", "--steps", "4",
            "--set", "train.ref_sync=false"]
    runs = {}
    for name, launcher in (("one", [sys.executable]), ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"])):
        done = subprocess.run([*launcher, *args, "--out", str(tmp_path / name)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert done.returncode == 0, done.stderr[-4000:]
        [runs[name]] = [p for p in (tmp_path / name).iterdir() if p.is_dir()]
    one, two = _rows(runs["one"]), _rows(runs["two"])
    assert one[3]["staleness"] == 1 and one[3]["mismatch_kl_lag"] > 1e-4  # step 3: the window of version 2, a synced copy
    for a, b in zip(one, two):
        for key in ("mismatch_kl", "mismatch_kl_engine", "mismatch_kl_lag", "is_ess"):
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-6), (a["step"], key)
