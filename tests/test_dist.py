"""FSDP2 over 2 gloo ranks on CPU, launched with torchrun as a user would.

The 2-rank run must be the 1-process run: the same rollouts (one generator on rank 0, seeded by
(seed, step)), the same rewards and pairs (scored per prompt shard, gathered before pairing), and
the same update (loss over the global batch, gradients summed), up to float summation order.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from semibench.dist import World, shard_range

# What the rollouts, rewards and pair/group choice decide: equal, not just close.
EXACT = ("reward", "reward/math", "reward/if", "rollout_length", "generated_tokens", "frac_finished", "generator_version",
         "staleness", "frac_valid_prompts", "num_units", "skipped", "chosen_length", "rejected_length", "train_tokens", "lr")
# Losses and statistics of the update: equal up to float summation order.
CLOSE = ("dpo_loss", "grpo_loss", "grad_norm", "chosen_logp", "rejected_logp", "kl", "mismatch_kl", "logit_entropy")


def _train_args(out: Path, objective: str, task: str, sync_every: str, steps: int, extra=()) -> list[str]:
    return ["-m", "semibench", "train", "--preset", "tiny", "--task", task, "--objective", objective,
            "--sync-every", sync_every, "--steps", str(steps), "--out", str(out), *extra]


def _torchrun(nproc: int) -> list[str]:
    # --standalone: a private rendezvous on a free port, so concurrent runs never collide.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 0, done.stderr[-4000:]


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    [last] = sorted((run / "checkpoints").iterdir())[-1:]
    return load_file(last / "model.safetensors")


def test_shard_range_partitions_in_rank_order():
    for size in (1, 2, 3, 5):
        for n in (0, 1, 4, 7, 10):
            parts = [shard_range(n, World(rank=r, size=size)) for r in range(size)]
            assert [i for p in parts for i in p] == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("objective,task,sync_every", [("dpo", "math", "2"), ("grpo", "mixed", "1")])
def test_two_ranks_equal_one_process(tmp_path, objective, task, sync_every):
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, *_train_args(one, objective, task, sync_every, 3)])
    _run(_torchrun(2) + _train_args(two, objective, task, sync_every, 3))
    [run_one], [run_two] = list(one.iterdir()), list(two.iterdir())
    assert run_one.name == run_two.name and (run_two / "DONE").exists()  # world size is not part of the run
    rows_one, rows_two = _rows(run_one), _rows(run_two)
    assert [r["step"] for r in rows_two] == [0, 1, 2]  # rank 0 alone writes the metrics
    assert any(not r["skipped"] for r in rows_one)  # the update path really ran
    for a, b in zip(rows_one, rows_two):
        assert {k: a.get(k) for k in EXACT} == {k: b.get(k) for k in EXACT}
        for key in CLOSE:
            assert (key in a) == (key in b)
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (a["step"], key)
    w_one, w_two = _final_weights(run_one), _final_weights(run_two)
    assert sorted(w_one) == sorted(w_two)
    initial = load_file(Path(os.environ["SEMIBENCH_CACHE"]) / "tiny" / "model.safetensors")
    moved = max((w_one[k] - initial[k]).abs().max().item() for k in w_one)
    gap = max((w_one[k] - w_two[k]).abs().max().item() for k in w_one)
    assert moved > 1e-3 and gap < 1e-4, (moved, gap)  # the learned change dwarfs the 1-vs-2-rank gap
