"""Pipelined windows: which call makes which step's rollouts, that running ahead changes nothing
but timing, and that stale rollouts are still caught."""

import json
import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from semibench import config
from semibench.engines.base import Completion, Sampling
from semibench.engines.hf import HFGenerator
from semibench.sync import StaleRolloutError
from semibench.training.pipeline import RolloutProducer, chunk_bounds, chunk_seed
from semibench.training.train import train

TIMING = ("time/", "tokens_per_s")


def _calls(sync_every, chunk_steps, total):
    return sorted({chunk_bounds(t, sync_every, chunk_steps, total) for t in range(total)})


def test_chunks_are_cut_from_each_window_start():
    assert _calls(8, 3, 16) == [(0, 3), (3, 6), (6, 8), (8, 11), (11, 14), (14, 16)]
    assert _calls(None, 4, 10) == [(0, 4), (4, 8), (8, 10)]  # offline: one up-front window, in chunks
    assert _calls(1, 4, 3) == [(0, 1), (1, 2), (2, 3)]  # online: one step per call, whatever the chunk
    assert _calls(4, 8, 6) == [(0, 4), (4, 6)]  # a call never crosses a sync
    assert chunk_seed(0, 5) == 5 and chunk_seed(2, 0) == 2_000_006


class FakeGenerator:
    """Records each call; a call whose seed is in `hold` blocks until `release` is set."""

    def __init__(self, hold=()):
        self.version = 0
        self.calls: list[tuple[int, int]] = []  # (number of prompts, seed)
        self.hold = set(hold)
        self.release = threading.Event()
        self.changed = threading.Condition()

    def generate(self, prompts, n, sampling):
        with self.changed:
            self.calls.append((len(prompts), sampling.seed))
            self.changed.notify_all()
        if sampling.seed in self.hold:
            self.release.wait(10)
        return [Completion(i, (1, 2), (-0.5, -0.5), "x", self.version, True) for i in range(len(prompts)) for _ in range(n)]

    def load_weights(self, version, state):
        self.version = version

    def wait_for_calls(self, count):
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.calls) >= count, timeout=10)


def _producer(gen, ahead, sync_every=4, chunk_steps=2, total=8):
    return RolloutProducer(gen, lambda step: [f"p{step}a", f"p{step}b"], lambda p: [len(p)], 2, Sampling(seed=None),
                           seed=1, sync_every=sync_every, total_steps=total, chunk_steps=chunk_steps, ahead=ahead)


def test_producer_runs_one_chunk_ahead_within_the_window_only():
    gen = FakeGenerator()
    producer = _producer(gen, ahead=True)
    batch, _ = producer.get(0)
    assert [c.prompt_index for c in batch.completions] == [0, 0, 1, 1] and batch.prompts == ["p0a", "p0b"]
    gen.wait_for_calls(2)  # the chunk of steps 2-3 starts without anyone asking for step 2
    assert gen.calls == [(4, chunk_seed(1, 0)), (4, chunk_seed(1, 2))]
    for step in (1, 2, 3):
        assert producer.get(step)[0].prompts == [f"p{step}a", f"p{step}b"]
    assert len(gen.calls) == 2  # window [0, 4) done: nothing of the next version before the sync
    producer.sync(4, {})
    assert producer.get(4)[0].completions[0].version == 4
    producer.close()


def test_inline_producer_makes_the_same_calls():
    ahead, inline = FakeGenerator(), FakeGenerator()
    for gen, flag in ((ahead, True), (inline, False)):
        producer = _producer(gen, ahead=flag, sync_every=None, chunk_steps=3, total=7)
        for step in range(7):
            producer.get(step)
        producer.close()
    assert ahead.calls == inline.calls == [(6, chunk_seed(1, 0)), (6, chunk_seed(1, 3)), (2, chunk_seed(1, 6))]


class SlowGenerator(FakeGenerator):
    def generate(self, prompts, n, sampling):
        time.sleep(0.2)
        return super().generate(prompts, n, sampling)


def test_waiting_counts_inline_generation():
    # Unpipelined (and under torchrun) the caller generates inside get(): that is its wait, not 0.
    producer = _producer(SlowGenerator(), ahead=False, chunk_steps=1)
    _, waited = producer.get(0)
    assert waited >= 0.2
    producer.close()


def test_sync_refuses_while_a_chunk_is_in_flight():
    gen = FakeGenerator(hold={chunk_seed(1, 2)})
    producer = _producer(gen, ahead=True)
    producer.get(0)  # chunk (0, 2) done; chunk (2, 4) started ahead and hangs in the generator
    gen.wait_for_calls(2)
    with pytest.raises(RuntimeError, match="being generated"):
        producer.sync(4, {})
    gen.release.set()
    producer.close()


def _tiny(tmp_path, **overrides):
    cfg = config.resolve("tiny", {"task.name": "math", "loss.objective": "grpo", "train.steps": 5, **overrides})
    run = train(cfg, tmp_path / "runs")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    weights = load_file(run / "checkpoints" / "step_000005" / "model.safetensors")
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows], weights


@pytest.mark.parametrize("sync_every", ["1", "3", "inf"])
def test_pipelining_changes_no_metric_and_no_weight(tmp_path, sync_every):
    common = {"train.sync_every": sync_every, "train.rollout_chunk_steps": 2}
    rows_on, w_on = _tiny(tmp_path / "on", **common, **{"train.pipeline": "true"})
    rows_off, w_off = _tiny(tmp_path / "off", **common, **{"train.pipeline": "false"})
    assert rows_on == rows_off
    assert all(torch.equal(w_on[k], w_off[k]) for k in w_on)
    assert [r["generator_version"] for r in rows_on] == {"1": [0, 1, 2, 3, 4], "3": [0, 0, 0, 3, 3], "inf": [0] * 5}[sync_every]


def test_generator_left_on_old_weights_is_caught(tmp_path, monkeypatch):
    # A sync that "succeeds" without loading anything: the rollouts keep version 0 and the
    # staleness assertion stops the run at the first step outside the window of version 0.
    monkeypatch.setattr(HFGenerator, "load_weights", lambda self, version, state: None)
    cfg = config.resolve("tiny", {"task.name": "math", "loss.objective": "dpo", "train.steps": 4, "train.sync_every": "2"})
    with pytest.raises(StaleRolloutError, match="version 0 used at step 2"):
        train(cfg, tmp_path / "runs")
