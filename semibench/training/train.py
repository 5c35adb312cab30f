"""train(cfg) -> checkpoint dir. The loop, top to bottom:

sync when due -> generate -> reward -> pairs/groups -> forward/backward -> AdamW + schedule + clip
-> log -> checkpoint. The optimizer step (the objective on each micro-batch, clip, update) is
step.train_step; what the loop calls around it (resume, the lag diagnostic's window, the run's
summary) sits beside the loop.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.distributed.tensor import DTensor

from semibench.config import ConfigError, RunConfig, regime_label
from semibench.datafiles import read_spec
from semibench.engines import load_generator
from semibench.engines.base import Completion, Generator, Sampling
from semibench.hardware import torch_dtype
from semibench.models import frozen_copy, load_causal_lm, load_tokenizer, resolve_model, store_linears_in
from semibench.rewards import Rewarder, check_prompts, length_normalized_reward
from semibench.runs import RunDir, RunLock, atomic_write_json, export_steps, git_commit, is_done, mark_done
from semibench.sync import check_fresh, window_start
from semibench.tasks import Prompt, PromptSampler, chat_template, constraint_type_strata, load_prompts
from semibench.trackers import check_installed, open_trackers, requested
from semibench.training import dist
from semibench.training.checkpoint import (WindowStart, bytes_needed, check_free_space, drop_states, export_hf, latest_state, load_state, prune_states,
                                           save_state, saves_mid_window, states_held, weight_bytes)
from semibench.training.pipeline import OfflineDataset, RolloutProducer
from semibench.training.step import Diverged, Models, train_step


def train(cfg: RunConfig, out: Path = Path("runs"), progress: Callable[[int, dict], None] | None = None) -> Path:
    """Run one training job; returns the run directory (which holds `DONE` when it finished)."""
    run = RunDir(out, cfg)
    if is_done(run.path):
        return run.path
    world = dist.init()  # one process: a world of one; under torchrun: FSDP2 over all ranks
    check_installed(requested(cfg))  # --report-to a tracker that is not installed: one line, nothing trained
    pools = load_prompts(cfg.task)  # bad data fails here, before anything is written
    check_prompts(cfg.reward, pools)
    strata = constraint_type_strata(cfg.task, pools)  # a pool it cannot balance fails here too
    lock = RunLock(run.path) if world.is_main else None  # one process per run directory; RunLocked names the holder
    if is_done(run.path):  # finished by the holder we may have waited behind
        return run.path
    sampler = PromptSampler(pools, cfg.train.prompts_per_step, cfg.task.math_fraction, cfg.train.order_seed, strata)
    models = load_models(cfg, world)
    exports = set(export_steps(cfg))
    if world.is_main:  # before the engine starts: a full disk is one line, not a torn state and a DCP traceback
        check_free_space(run.path, bytes_needed(weight_bytes(models.policy), len(exports), models.window is not None,
                                                  states_held(cfg.train.resume_every, cfg.train.steps)))
    # One generator, on rank 0; the other ranks receive its completions (see dist.py).
    generator = dist.rank0_generator(lambda: build_generator(cfg, models, world.device), world)
    rewarder = Rewarder(cfg.reward, list(pools), read_spec("templates")["judge"]["pointwise"])
    optimizer = build_optimizer(cfg, models.policy)
    sampling = Sampling(cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_new_tokens)
    s = cfg.train.sync_every
    # The trainer's copy of the generator's weights, for a resume that lands mid-window (and, in
    # models.window, for the lag diagnostic).
    window = WindowStart(keep=saves_mid_window(s, cfg.train.resume_every, cfg.train.steps), model=models.window)
    start = resume(cfg, run, world, models, generator, optimizer, window)
    reporters = open_trackers(cfg, run.path, start) if world.is_main else None  # --report-to: the same rows, rank 0 only
    # Offline is a fixed dataset: a returning prompt reuses its first occurrence's samples, kept
    # beside the run so a resume reuses exactly the same (pipeline.OfflineDataset).
    offline = None
    if s is None and not cfg.train.offline_regenerate:
        returning = OfflineDataset.returning_keys((sampler.batch(t) for t in range(cfg.train.steps)), prompt_key)
        offline = OfflineDataset(returning, run.path / OFFLINE_ROLLOUTS, write=world.is_main)
    # Rollouts of the current window, generated ahead while the trainer trains (see pipeline.py).
    # Across ranks generate() is a collective, so there the producer stays in the loop's thread.
    producer = RolloutProducer(
        generator, sampler.batch, lambda p: encode_prompt(models.tokenizer, p), cfg.sampling.samples_per_prompt, sampling,
        cfg.train.seed, s, cfg.train.steps, cfg.train.rollout_chunk_steps, ahead=cfg.train.pipeline and not world.sharded,
        offline=offline, key=prompt_key,
    )
    kinds_differ = len(pools) > 1  # mixed: log each kind's share of prompts with signal

    try:
        for step in range(start, cfg.train.steps):
            timings = {}
            # 1. Sync when the step enters a new window (never when s = inf).
            tick = time.perf_counter()
            if generator.version != window_start(step, s):
                producer.sync(window_start(step, s), dist.full_state_dict(models.policy, world))
                if cfg.train.ref_sync:
                    dist.copy_weights_(models.reference, models.policy)
                window.capture(models.policy, window_start(step, s))
            timings["time/sync"] = time.perf_counter() - tick

            # 2. N samples for each prompt of this step, from the window's weights: generated ahead
            # (time/generate is then only what the trainer still had to wait) or now.
            batch, timings["time/generate"] = producer.get(step)
            prompts, prompt_ids, completions = batch.prompts, batch.prompt_ids, batch.completions
            n = cfg.sampling.samples_per_prompt
            for c in completions:
                check_fresh(step, c.version, s)
            timings["time/generator_busy"] = batch.chunk_seconds / batch.chunk_steps  # its share of the call

            # 3. Reward each sample by its prompt's kind; each rank scores its slice of the prompts
            # and all ranks get every score (pairs and advantages need the whole group).
            tick = time.perf_counter()
            mine = dist.shard_range(len(prompts), world)
            local = [c for c in completions if c.prompt_index in mine]  # completions are grouped by prompt
            flat = [prompts[c.prompt_index] for c in local]
            rewards = dist.gather_lists(rewarder([p.kind for p in flat], [p.text for p in flat], [p.gold for p in flat], [c.text for c in local]), world)
            timings["time/reward"] = time.perf_counter() - tick

            # 4-5. Pairs or groups, forward/backward, one optimizer update.
            tick = time.perf_counter()
            lr = lr_at(cfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            grid = [rewards[i * n : (i + 1) * n] for i in range(len(prompts))]
            rng = random.Random(f"{cfg.train.seed}-pairs-{step}")
            lag_model = window_module(cfg, models, step - generator.version)
            try:
                step_metrics = train_step(cfg, models, optimizer, prompt_ids, completions, grid, [rewarder.is_binary(p.kind) for p in prompts], rng, world,
                                          window_model=lag_model, kinds=[p.kind for p in prompts] if kinds_differ else None)
            except Diverged as exc:
                raise ConfigError(divergence_message(cfg, run, step, exc)) from None
            timings["time/train"] = time.perf_counter() - tick

            # 6. Log.
            row = {"step": step, "lr": lr}
            row |= rollout_metrics(prompts, completions, rewards, step, generator.version)
            row["reused_rollouts"] = batch.reused / len(prompts)  # fraction of the step's rollouts taken from the offline dataset
            row |= step_metrics | timings
            row["tokens_per_s"] = batch.chunk_tokens / max(batch.chunk_seconds, 1e-9)  # of the generator, while generating
            if world.is_main:
                run.append_metrics(row)
                if reporters is not None:
                    reporters.log(row)
                if progress is not None:
                    progress(step, row)
                if step == SIGNAL_STEPS - 1:  # once, when the run's first steps are in (a resume past them does not repeat it)
                    line = little_signal(run.read_metrics(), cfg)
                    if line:
                        print(f"warning: {line}", file=sys.stderr, flush=True)

            # 7. Checkpoint every K steps and at the end; resumable state every R steps.
            if step + 1 in exports:
                export_hf(models.policy, models.tokenizer, run.checkpoint(step + 1), world)
            if cfg.train.resume_every and (step + 1) % cfg.train.resume_every == 0 and step + 1 < cfg.train.steps:
                save_state(run.state(step + 1), world, models.policy, optimizer, window, step + 1, s)
                if world.is_main:
                    prune_states(run.states, keep=run.state(step + 1))
    finally:
        producer.close()
        rewarder.close()
        if reporters is not None:
            reporters.close()
    if world.is_main:
        atomic_write_json(run.summary_path, summarize(cfg, run))
        mark_done(run.path)
        drop_states(run.states)
        lock.release()
    dist.barrier(world)  # no rank returns before the run is marked done
    return run.path


OFFLINE_ROLLOUTS = "offline_rollouts.jsonl"  # in the run directory: the offline dataset (pipeline.OfflineDataset)


def prompt_key(prompt: Prompt) -> str:
    """A prompt's identity in the offline dataset: its text, template applied (what the model sees)."""
    return prompt.text


def keeps_window_model(cfg: RunConfig) -> bool:
    """Whether the lag diagnostic needs a module of its own for the sync window's weights: only for
    1 < s < inf without ref_sync (one more frozen copy of the policy, sharded like it). At s = 1, and
    at every window's first step, the policy is the window's weights; under ref_sync the reference
    is; at s = inf the window is the initial model, and so is a reference that never syncs."""
    s = cfg.train.sync_every
    return s is not None and s > 1 and not cfg.train.ref_sync


def window_module(cfg: RunConfig, models: Models, staleness: int) -> torch.nn.Module | None:
    """The module holding the weights a step's rollouts were generated from; None when it is the policy itself."""
    if staleness == 0:
        return None
    if cfg.train.ref_sync or cfg.train.sync_every is None:
        return models.reference
    return models.window


def divergence_message(cfg: RunConfig, run: RunDir, step: int, exc: Diverged) -> str:
    """One line: the step, what went non-finite, what was kept, and the knobs that usually cause it."""
    seen = ", ".join(f"{k} {'finite' if math.isfinite(v) else v}" for k, v in exc.losses_seen.items()) or "no loss term"
    kept = latest_state(run.states)
    where = f"the last good state is {kept} (a resume continues from it)" if kept else "no resumable state was saved yet"
    beta = f"loss.dpo_beta={cfg.loss.dpo_beta}" if cfg.loss.objective != "grpo" else f"loss.kl_beta={cfg.loss.kl_beta}"
    return (f"step {step} diverged: gradient norm {exc.grad_norm}, {seen}; the update was not taken, nothing was exported from it "
            f"and the run is not DONE; {where}; lower optim.lr={cfg.optim.lr} or check {beta} and the training data")


def resume(cfg: RunConfig, run: RunDir, world: dist.World, models: Models, generator, optimizer, window: WindowStart) -> int:
    """Continue an unfinished run of the same config from its newest state; else start fresh.

    Returns the first step to run. The generator gets back the weights of the window it was serving
    (not the latest policy), and the reference too when it follows the generator. Metrics logged
    after the saved state are dropped: those steps run again and log again, identically.
    """
    # The run id hashes the config: a state here is this config's. Rank 0 decides for everyone.
    path = dist.broadcast_object(latest_state(run.states), world)
    if path is None:
        if world.is_main:
            run.start_fresh(cfg)
        dist.barrier(world)
        return 0
    step = load_state(path, world, models.policy, optimizer, window)
    if window.version:
        generator.load_weights(window.version, dist.gather_full(window.weights, world, models.policy))
        if cfg.train.ref_sync:
            dist.copy_state_(models.reference, window.weights)
    if world.is_main:
        run.truncate_metrics(step)
    dist.barrier(world)
    return step


def build_generator(cfg: RunConfig, models: Models, device: torch.device = torch.device("cpu")) -> Generator:
    """The engine serving the policy's weights; version 0 is the checkpoint the policy was loaded from.
    An HF engine computes on the trainer's `device` (rank 0's GPU under torchrun), never the host's CPU."""
    placement = {"gpu_ids": cfg.train.generator_gpus} if cfg.train.generator_gpus else {}  # validate(): vLLM only
    return load_generator(models.path, cfg.train.engine, torch_dtype(cfg.model.generator_dtype), cfg.train.seed, cfg.sampling.batch_size,
                          device=device, **placement)


def load_models(cfg: RunConfig, world: dist.World = dist.World()) -> Models:
    torch.manual_seed(cfg.train.seed)
    path = resolve_model(cfg.model.name)
    tokenizer = load_tokenizer(path)
    if cfg.model.chat_template:  # exported with the checkpoints, so their evaluation prompts alike
        tokenizer.chat_template = chat_template(cfg.model.chat_template)
    policy = load_causal_lm(path, torch_dtype(cfg.model.dtype)).train()
    reference = frozen_copy(policy)  # before sharding: a deep copy of plain tensors
    window = frozen_copy(policy) if keeps_window_model(cfg) else None
    d = cfg.dist
    policy = dist.prepare_model(policy, world, d.mixed_precision, d.activation_checkpointing)
    reference = dist.prepare_model(reference, world, d.mixed_precision, activation_checkpointing=False)  # no backward
    if window is not None:
        window = dist.prepare_model(window, world, d.mixed_precision, activation_checkpointing=False)
    if cfg.model.autocast_dtype:
        dtype = torch_dtype(cfg.model.autocast_dtype)
        autocast = lambda: torch.autocast(world.device.type, dtype=dtype)  # noqa: E731
        if not world.sharded:  # FSDP's mixed precision casts shards itself
            store_linears_in(reference, dtype)  # only ever runs forwards
            # The window's weights also go to the generator on a mid-window resume: rounding them
            # is exact only when the generator computes in the same dtype.
            if window is not None and torch_dtype(cfg.model.generator_dtype) == dtype:
                store_linears_in(window, dtype)
    else:
        autocast = contextlib.nullcontext
    return Models(policy, reference, tokenizer, autocast, path, window)


def build_optimizer(cfg: RunConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    # One fused kernel for the whole update: 0.046 s instead of 0.28-0.36 s a step for SmolLM2 on 2 cores.
    # FSDP's sharded parameters (DTensors) take the default implementation.
    fused = not any(isinstance(p, DTensor) for p in params)
    return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.adam_betas), eps=o.adam_eps, weight_decay=o.weight_decay, fused=fused)


def lr_at(cfg: RunConfig, step: int) -> float:
    """Linear warmup, then cosine decay to lr * final_lr_scale (or constant): a pure function of step."""
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.lr_schedule == "constant":
        return o.lr
    progress = (step - o.warmup_steps) / max(cfg.train.steps - o.warmup_steps, 1)
    return o.lr * (o.final_lr_scale + (1 - o.final_lr_scale) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def encode_prompt(tokenizer, prompt: Prompt) -> list[int]:
    messages = [{"role": "user", "content": prompt.text}]
    return list(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False))


def rollout_metrics(prompts: list[Prompt], completions: list[Completion], rewards: list[float], step: int, version: int) -> dict:
    kinds = [prompts[c.prompt_index].kind for c in completions]
    out = {
        "reward": sum(rewards) / len(rewards),
        "rollout_length": sum(len(c.token_ids) for c in completions) / len(completions),
        "reward_len_norm": length_normalized_reward(rewards, [len(c.token_ids) for c in completions]),
        "generated_tokens": float(sum(len(c.token_ids) for c in completions)),
        "frac_finished": sum(c.finished for c in completions) / len(completions),
        "generator_version": version,
        "staleness": step - version,
    }
    for kind in sorted(set(kinds)):
        values = [r for r, k in zip(rewards, kinds) if k == kind]
        out[f"reward/{kind}"] = sum(values) / len(values)
    return out


SIGNAL_STEPS, SIGNAL_FLOOR = 5, 0.25  # a run whose first 5 steps all had under a quarter of their prompts with signal


def little_signal(rows: list[dict], cfg: RunConfig) -> str | None:
    """One line when the reward gave the objective little to learn from: every one of the first
    SIGNAL_STEPS steps had frac_valid_prompts under SIGNAL_FLOOR (a pair or a group needs samples that
    score differently), else None."""
    head = [r["frac_valid_prompts"] for r in rows[:SIGNAL_STEPS]]
    if len(head) < SIGNAL_STEPS or max(head) >= SIGNAL_FLOOR:
        return None
    return (f"frac_valid_prompts stayed under {SIGNAL_FLOOR} for the first {SIGNAL_STEPS} steps (mean {sum(head) / len(head):.2f}): "
            f"this reward gives {cfg.loss.objective} little to learn from (most prompts' {cfg.sampling.samples_per_prompt} samples all "
            "score alike); use an easier or harder task, more samples per prompt (sampling.samples_per_prompt) or a graded reward")


def summarize(cfg: RunConfig, run: RunDir) -> dict:
    rows = run.read_metrics()
    head, tail = rows[: min(5, len(rows))], rows[-min(5, len(rows)) :]
    mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
    return {
        "regime": regime_label(cfg.train.sync_every),
        "steps": len(rows),
        "num_updates": sum(1 for r in rows if not r.get("skipped")),  # a step without a valid pair or group takes none
        "skipped_steps": sum(1 for r in rows if r.get("skipped")),
        "reward_first5": mean(head, "reward"),
        "reward_last5": mean(tail, "reward"),
        "frac_valid_prompts": mean(rows, "frac_valid_prompts"),
        "little_signal": little_signal(rows, cfg),
        "seconds": sum(r["time/generate"] + r["time/reward"] + r["time/train"] + r["time/sync"] for r in rows),
        "git_commit": git_commit(),  # the code that finished the run (semibench.read_runs' commit column)
    }
