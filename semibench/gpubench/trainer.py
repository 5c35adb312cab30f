"""semibench's side of the GPU benchmark: the trainer's own parts (`load_models`, `build_optimizer`,
`build_generator`, `train_step`, FSDP2 from `dist`) on one rank, timed.

- `trainer_block`: training steps alone on fixed rollouts of the shape's lengths: tokens/s, model
  FLOP/s and MFU, peak memory, the step-0 loss and gradient norm (policy = reference: DPO's loss is
  ln 2, GRPO's 0), and `torch.profiler`'s top kernels of one more step.
- `online_block`: whole online steps (s = 1) as `train()` runs them: sync the HF generator from the
  policy, generate, reward, train; the side set against TRL's trainers.

One rank is a real process group of one (NCCL on a GPU, gloo on CPU) made without torchrun, so
FSDP2's sharding, mixed precision and collectives all run.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import random
import socket
import statistics
import time

import torch

from semibench import config
from semibench.config import ConfigError, RunConfig
from semibench.engines.base import Completion, Sampling
from semibench.gpubench.workload import ModelInfo, Shape, reward, step_flops
from semibench.sync import window_start
from semibench.training import dist
from semibench.training.step import train_step
from semibench.training.train import build_generator, build_optimizer, load_models

ONE_RANK_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE")  # what torchrun would have set
PROFILE_TOP = 10


def one_rank_world() -> dist.World:
    """The process group of one this process trains in; under torchrun, torchrun's (one rank only)."""
    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise ConfigError("semibench bench gpu measures one rank: launch it without torchrun, or with --nproc_per_node=1")
    if "WORLD_SIZE" not in os.environ:
        with socket.socket() as s:  # a free port for the group's store
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    return dist.init()


def bench_config(shape: Shape, model: ModelInfo, objective: str, activation_checkpointing: bool) -> RunConfig:
    """The smol preset's online run of `objective` on the shape's work: bf16 (FSDP2 mixed precision over
    fp32 master weights, bf16 autocast, a bf16 HF generator), every sequence of a step in one forward."""
    work = shape.work[objective]
    return config.resolve("smol", {
        "model.name": model.path, "task.name": "math", "loss.objective": objective, "train.sync_every": "1", "train.engine": "hf",
        "model.autocast_dtype": "bfloat16", "model.generator_dtype": "bfloat16", "dist.mixed_precision": True,
        "dist.activation_checkpointing": activation_checkpointing, "train.prompts_per_step": work["prompts"],
        "sampling.samples_per_prompt": work["samples"], "train.micro_batch_size": shape.sequences(objective),
        "sampling.max_new_tokens": shape.completion_tokens, "sampling.batch_size": shape.sequences(objective), "train.resume_every": 0,
    })


def wait(device: torch.device) -> None:
    """Block until the device has finished what was queued: a GPU timer must not stop at the last launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    """Peak memory the allocator handed out since `reset_peak` (None on CPU: no allocator to ask)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def fixed_rollouts(shape: Shape, objective: str, vocab_size: int, seed: int = 0):
    """(prompt ids, completions, reward grid) of one step at the shape's exact lengths."""
    rng = random.Random(seed)
    prompts, n = shape.work[objective]["prompts"], shape.work[objective]["samples"]
    prompt_ids = [[rng.randrange(2, vocab_size) for _ in range(shape.prompt_tokens)] for _ in range(prompts)]
    completions = [Completion(p, tuple(rng.randrange(2, vocab_size) for _ in range(shape.completion_tokens)), (0.0,) * shape.completion_tokens,
                              "", 0, False) for p in range(prompts) for _ in range(n)]
    grid = [[reward(c.token_ids) for c in completions[p * n : (p + 1) * n]] for p in range(prompts)]
    return prompt_ids, completions, grid


def trainer_block(shape: Shape, model: ModelInfo, objective: str, activation_checkpointing: bool, world: dist.World, ceiling_tflop_per_s: float,
                  steps: int, profile: bool) -> dict:
    """`warmup_steps` + `steps` train steps on one step's fixed rollouts; medians over the measured ones."""
    cfg = bench_config(shape, model, objective, activation_checkpointing)
    models = load_models(cfg, world)
    optimizer = build_optimizer(cfg, models.policy)
    prompt_ids, completions, grid = fixed_rollouts(shape, objective, model.vocab_size)
    binary = [False] * len(prompt_ids)  # scalar rewards: best vs worst, as for a reward model
    reset_peak(world.device)

    def step(k: int) -> tuple[float, dict]:
        wait(world.device)
        tick = time.perf_counter()
        metrics = train_step(cfg, models, optimizer, prompt_ids, completions, grid, binary, random.Random(k), world)
        wait(world.device)
        return time.perf_counter() - tick, metrics

    runs = [step(k) for k in range(shape.warmup_steps + steps)]
    measured = runs[shape.warmup_steps :]
    first = runs[0][1]
    seconds = statistics.median(s for s, _ in measured)
    tokens = int(first["train_tokens"])
    head_positions = len(completions) * (shape.completion_tokens + 1)  # forward_logps keeps the completion's logits and one before
    flops = step_flops(model, tokens, head_positions)
    row = {
        "objective": objective, "activation_checkpointing": activation_checkpointing, "steps": len(measured), "step_s": seconds,
        "sequences": len(completions), "tokens_per_step": tokens, "tokens_per_s": tokens / seconds, "model_tflop_per_step": flops / 1e12,
        "model_tflop_per_s": flops / seconds / 1e12, "mfu": flops / seconds / 1e12 / ceiling_tflop_per_s, "peak_memory_gib": peak_gib(world.device),
        "step0_loss": first[f"{objective}_loss"], "step0_grad_norm": first["grad_norm"], "num_units": first["num_units"],
    }
    profiled = top_kernels(lambda: step(len(runs)), world.device) if profile else None
    del models, optimizer
    release(world.device)
    return row | ({"profile": profiled} if profiled else {})


def top_kernels(run_step, device: torch.device) -> dict:
    """One step under torch.profiler: the kernels (GPU) or operators (CPU) that took the most self time."""
    from torch.profiler import ProfilerActivity, profile

    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as prof:
        step_s, _ = run_step()
    events = prof.key_averages()
    if on_gpu:  # kernels only: an operator's device time is its kernels', counted twice otherwise
        rows = [(e.key, e.self_device_time_total, e.count) for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    else:
        rows = [(e.key, e.self_cpu_time_total, e.count) for e in events]
    rows = [r for r in rows if r[1] > 0]
    busy_us = sum(us for _, us, _ in rows)
    top = sorted(rows, key=lambda r: -r[1])[:PROFILE_TOP]
    return {"step_s": step_s, "what": "CUDA kernels" if on_gpu else "CPU operators", "busy_s": busy_us / 1e6,
            "top": [{"name": name, "self_ms": us / 1e3, "share_of_busy": us / busy_us, "calls": count} for name, us, count in top]}


def online_block(shape: Shape, model: ModelInfo, objective: str, world: dist.World, prompts: list[str], steps: int) -> dict:
    """Online steps (s = 1) as `train()` runs them, with the HF generator on the trainer's device."""
    cfg = bench_config(shape, model, objective, activation_checkpointing=False)
    models = load_models(cfg, world)
    optimizer = build_optimizer(cfg, models.policy)
    generator = build_generator(cfg, models, world.device)
    n, per_step = cfg.sampling.samples_per_prompt, cfg.train.prompts_per_step
    sampling = Sampling(cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_new_tokens)
    reset_peak(world.device)
    rows = []
    for step in range(shape.warmup_steps + steps):
        texts = prompts[step * per_step : (step + 1) * per_step]
        prompt_ids = [models.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        wait(world.device)
        marks = [time.perf_counter()]
        if generator.version != window_start(step, 1):  # every step but the first enters a new window at s = 1
            generator.load_weights(window_start(step, 1), dist.full_state_dict(models.policy, world))
            if cfg.train.ref_sync:
                dist.copy_weights_(models.reference, models.policy)
        wait(world.device)
        marks.append(time.perf_counter())
        completions = generator.generate(prompt_ids, n, dataclasses.replace(sampling, seed=cfg.train.seed * 1_000_003 + step))
        marks.append(time.perf_counter())
        rewards = [reward(c.token_ids) for c in completions]
        grid = [rewards[p * n : (p + 1) * n] for p in range(len(texts))]
        marks.append(time.perf_counter())
        metrics = train_step(cfg, models, optimizer, prompt_ids, completions, grid, [False] * len(texts), random.Random(step), world)
        wait(world.device)
        marks.append(time.perf_counter())
        phases = dict(zip(("sync_s", "generate_s", "reward_s", "train_s"), (b - a for a, b in zip(marks, marks[1:]))))
        rows.append(phases | {"step_s": marks[-1] - marks[0], "generated_tokens": sum(len(c.token_ids) for c in completions),
                              "units": metrics["num_units"]})
    measured = rows[shape.warmup_steps :]
    out = {key: statistics.median(r[key] for r in measured) for key in ("step_s", "sync_s", "generate_s", "reward_s", "train_s")}
    out |= {"side": "semibench", "objective": objective, "steps": len(measured), "samples_per_step": per_step * n,
            "generated_tokens_per_step": sorted({r["generated_tokens"] for r in rows}), "peak_memory_gib": peak_gib(world.device),
            "units_per_step": sorted({r["units"] for r in rows})}  # pairs or samples trained: a step without any would time no training
    out["other_s"] = out["step_s"] - out["generate_s"]  # everything but generation, as for TRL
    del models, optimizer, generator
    release(world.device)
    return out
