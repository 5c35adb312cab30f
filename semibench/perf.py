"""Benchmarks that print numbers (never timed tests). Each returns rows; the CLI prints the tables.

- `step`: where one online step spends its time (sync / generate / reward / train), DPO and GRPO
  (or the objectives asked for: GroupDPO beside GRPO shows what each trains on).
- `pipeline`: wall time of the same run at s = 1, 4, 8, 16 (vLLM, pipelined windows), ratio to s = 1.
- `trl`: samples/s of online DPO and GRPO against TRL 1.16's OnlineDPOTrainer / GRPOTrainer on the
  same model, prompts, lengths, samples and batch, both sides on HF generation (semibench also on
  vLLM), measured in alternating blocks in one process. TRL is a bench-only dependency.
- `sync`: seconds per generator weight sync against a plain in-memory copy of the same state dict.
- `placement`: the trainer's step time alone, next to an idle engine process, with vLLM's engine
  in its own process, and while that engine generates: why the engine lives in a process of its own.

Medians exclude each block's first step (it pays warm-up). The machine is shared: every table
prints the load average before and after.

Over 400 lines because it holds five independent benchmarks that share the timing helpers above
them; the next split is one module per benchmark under `perf/` (the TRL comparison first, ~100 lines).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from semibench import config
from semibench.models import checkpoint_params
from semibench.runs import read_metrics
from semibench.training.train import train

PHASES = ("time/sync", "time/generate", "time/reward", "time/train")


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def step_breakdown(preset: str, task: str, steps: int, overrides: dict, objectives: tuple[str, ...] = ("dpo", "grpo")) -> list[dict]:
    """One online run per objective; each row holds the medians over its steps (step 0 excluded
    when there are more, because it pays one-time costs such as kernel warm-up). The runs share a
    training seed, so their first step samples the same rollouts."""
    rows = []
    for objective in objectives:
        cfg = config.resolve(preset, {"task.name": task, "loss.objective": objective, "train.sync_every": "1", "train.steps": steps, **overrides})
        with tempfile.TemporaryDirectory() as out:
            run = train(cfg, Path(out))
            metrics = read_metrics(run / "metrics.jsonl")
        measured = metrics[1:] if len(metrics) > 1 else metrics
        row = {"objective": objective, "steps": len(measured)}
        for key in PHASES + ("tokens_per_s", "generated_tokens", "reward"):
            row[key] = statistics.median(m[key] for m in measured)
        row["total_s"] = sum(row[p] for p in PHASES)
        row |= train_efficiency(cfg, measured)
        row |= generate_efficiency(cfg, measured)
        rows.append(row)
    return rows


def generate_efficiency(cfg: config.RunConfig, metrics: list[dict]) -> dict:
    """The generator's decode rate as a share of its ceiling: generated tokens / generate seconds
    against this machine's matmul ceiling in the generator's dtype (measured now) over the model's
    2 N FLOPs per generated token. Decoding a few sequences is bound by memory, not by FLOPs, so
    this share is far below the trainer's; it says how much batching could still buy."""
    from semibench.hardware import matmul_ceiling_gflops, resolve_dtype
    from semibench.models import resolve_model

    dtype = resolve_dtype(cfg.model.generator_dtype)
    ceiling = matmul_ceiling_gflops(dtype)
    flops_per_token = 2 * checkpoint_params(resolve_model(cfg.model.name))
    timed = [m for m in metrics if m.get("time/generate", 0) > 0 and m.get("generated_tokens")]
    rate = statistics.median(m["generated_tokens"] / m["time/generate"] for m in timed) if timed else None
    ceiling_tokens_per_s = ceiling * 1e9 / flops_per_token
    return {"generate_tokens_per_s": rate, "generate_ceiling_tokens_per_s": ceiling_tokens_per_s, "generator_dtype": dtype,
            "generate_pct_of_ceiling": None if rate is None else 100 * rate / ceiling_tokens_per_s}


def train_efficiency(cfg: config.RunConfig, metrics: list[dict]) -> dict:
    """The train phase's achieved GFLOP/s and its share of this machine's matmul ceiling in the dtype it
    computed in, measured now: "% of peak" then compares an AVX2 box with an AMX one, seconds do not.

    FLOPs per trained token: 6 N for the policy's forward and backward plus 2 N for the reference's
    forward (N: the checkpoint's parameters, a tied embedding counted once, as the LM head's matmul);
    attention's T^2 term is left out (under 3% at these lengths), as are padded positions.
    """
    from semibench.hardware import matmul_ceiling_gflops, resolve_autocast
    from semibench.models import resolve_model

    dtype = resolve_autocast(cfg.model.autocast_dtype) or cfg.model.dtype
    ceiling = matmul_ceiling_gflops(dtype)
    trained = [m for m in metrics if m.get("train_tokens")]  # a step without a pair or a group trains nothing
    if not trained:
        return {"train_gflops": None, "ceiling_gflops": ceiling, "pct_of_ceiling": None, "compute_dtype": dtype}
    params = checkpoint_params(resolve_model(cfg.model.name))
    achieved = statistics.median(8 * params * m["train_tokens"] / m["time/train"] for m in trained) / 1e9
    return {"train_gflops": achieved, "ceiling_gflops": ceiling, "pct_of_ceiling": 100 * achieved / ceiling, "compute_dtype": dtype}


def _timed_run(cfg: config.RunConfig) -> tuple[list[dict], list[float], float]:
    """Train `cfg` in a temp dir: (metric rows, wall seconds of each step, wall seconds of the run)."""
    stamps = []
    tick = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run = train(cfg, Path(out), progress=lambda step, row: stamps.append(time.perf_counter()))
        rows = read_metrics(run / "metrics.jsonl")
    wall = time.perf_counter() - tick
    return rows, [b - a for a, b in zip(stamps, stamps[1:])], wall


def _start_engine(cfg: config.RunConfig) -> float:
    """Start (or reuse) the run's vLLM engine outside the timings: every run below shares it."""
    from semibench.engines import load_generator
    from semibench.hardware import torch_dtype
    from semibench.models import resolve_model

    tick = time.perf_counter()
    load_generator(resolve_model(cfg.model.name), "vllm", torch_dtype(cfg.model.generator_dtype), cfg.train.seed)
    return time.perf_counter() - tick


def pipeline(preset: str, steps: int, sync_values: list[str], overrides: dict) -> list[dict]:
    """The same run (same seeds) at each s, on the vLLM engine: one batched call per chunk of a
    window, generated ahead in a thread or inline as the preset's `train.pipeline` says."""
    base = {"train.steps": steps, "train.engine": "vllm", **overrides}
    engine_s = _start_engine(config.resolve(preset, base))
    rows = []
    for s in sync_values:
        cfg = config.resolve(preset, {**base, "train.sync_every": s})
        before = load()
        metrics, _, wall = _timed_run(cfg)
        row = {"s": s, "steps": len(metrics), "wall_s": wall, "load": f"{before} -> {load()}", "engine_start_s": engine_s,
               "ahead": cfg.train.pipeline, "chunk_steps": cfg.train.rollout_chunk_steps}
        for key in PHASES + ("time/generator_busy",):
            row[key] = sum(m[key] for m in metrics)
        row["reward"] = sum(m["reward"] for m in metrics) / len(metrics)
        row["generated_tokens"] = sum(m["generated_tokens"] for m in metrics)
        row["metrics"] = metrics  # per step, for where the time went
        rows.append(row)
        print(f"s={s}: {wall:.0f} s, load {row['load']}", file=sys.stderr, flush=True)  # long runs: show progress
    # Listing an s twice (e.g. 1,4,8,16,16,8,4,1) evens out load drift on a shared machine: the
    # ratio is then to the mean over the first s's runs.
    base = statistics.mean(r["wall_s"] for r in rows if r["s"] == rows[0]["s"])
    for row in rows:
        row["ratio"] = row["wall_s"] / base
    return rows


def mean_by_s(rows: list[dict]) -> list[dict]:
    """One row per s: mean wall time and phase sums over its runs, ratio to the first s."""
    out = []
    for s in dict.fromkeys(r["s"] for r in rows):
        runs = [r for r in rows if r["s"] == s]
        out.append({"s": s, "runs": len(runs), **{k: statistics.mean(r[k] for r in runs) for k in ("wall_s", "ratio", *PHASES, "time/generator_busy")}})
    return out


# ---- against TRL 1.16 -------------------------------------------------------------------------

TRL_SHAPES = {  # what both sides run per step: prompts, samples per prompt, sequences per forward
    "grpo": {"prompts": 4, "samples": 4, "micro_batch": 16},
    "dpo": {"prompts": 4, "samples": 2, "micro_batch": 8},  # TRL's online DPO always draws 2 samples
}


# The work the published comparison measured (docs/benchmarks.md), pinned so that it stays the same work
# when the smol preset's task changes: its prompts, their template and the completion cap set the time.
TRL_WORK = {"task.reasoning_gym": ("easy_arithmetic",), "task.math_template": "paper", "sampling.max_new_tokens": 128}


def semibench_overrides(objective: str, engine: str, steps: int) -> dict:
    shape = TRL_SHAPES[objective]
    return TRL_WORK | {"task.name": "math", "loss.objective": objective, "train.sync_every": "1", "train.steps": steps, "train.engine": engine,
                       "train.prompts_per_step": shape["prompts"], "sampling.samples_per_prompt": shape["samples"],
                       "train.micro_batch_size": shape["micro_batch"], "train.resume_every": 0}


def compute_precision(cfg: config.RunConfig, machine=None) -> str:
    """The dtype semibench's trainer computes in for `cfg` on this machine ("bfloat16" under bf16
    autocast, else its master dtype): what TRL's side must be given for a fair comparison."""
    from semibench.hardware import resolve_autocast

    return resolve_autocast(cfg.model.autocast_dtype, machine) or cfg.model.dtype


def trl_config(objective: str, cfg: config.RunConfig, steps: int, out: str, device: str = "cpu", min_new_tokens: int = 0):
    """TRL's config for the same step as `cfg`: the precision semibench resolved (bf16 mixed precision
    where the CPU computes in bf16, fp32 where it would be emulated: `bf16=True` on AVX2 would time TRL
    emulating bf16 against semibench in fp32), no gradient checkpointing and the KV cache on in
    generation (TRL's online DPO turns it off when checkpointing: 8x slower generation), T = 1, same
    lengths, batch (`cfg`'s prompts x samples per step), samples, lr, beta and AdamW settings.
    `device`: "cpu", or "cuda" for TRL's default device placement. `min_new_tokens`: hold EOS off that
    long (semibench's GPU bench makes every completion on both sides exactly that long)."""
    prompts, samples = cfg.train.prompts_per_step, cfg.sampling.samples_per_prompt
    o = cfg.optim
    generation = {"use_cache": True} | ({"min_new_tokens": min_new_tokens} if min_new_tokens else {})
    common = dict(
        output_dir=out, use_cpu=device == "cpu", bf16=compute_precision(cfg) == "bfloat16", report_to=[], seed=cfg.train.seed,
        gradient_accumulation_steps=1, temperature=cfg.sampling.temperature, top_p=cfg.sampling.top_p, top_k=0, gradient_checkpointing=False,
        max_steps=steps, logging_steps=1, save_strategy="no", dataloader_num_workers=0, learning_rate=o.lr, adam_beta1=o.adam_betas[0],
        adam_beta2=o.adam_betas[1], adam_epsilon=o.adam_eps, weight_decay=o.weight_decay, max_grad_norm=o.grad_clip, disable_tqdm=True,
        generation_kwargs=generation,
    )
    if objective == "grpo":
        from trl import GRPOConfig

        return GRPOConfig(per_device_train_batch_size=prompts * samples, num_generations=samples,
                          max_completion_length=cfg.sampling.max_new_tokens, beta=cfg.loss.kl_beta, **common)
    from trl.experimental.online_dpo import OnlineDPOConfig

    return OnlineDPOConfig(per_device_train_batch_size=prompts, max_new_tokens=cfg.sampling.max_new_tokens, beta=[cfg.loss.dpo_beta], **common)


def _trl_block(objective: str, cfg: config.RunConfig, prompts: list, rewarder, steps: int) -> list[float]:
    """Seconds of each TRL step (first one included; the caller drops it)."""
    from semibench.models import load_tokenizer, resolve_model

    def reward(prompts, completions, gold, kind, **kw):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return rewarder(list(kind), [p[-1]["content"] for p in prompts], list(gold), texts)

    rows = [{"prompt": [{"role": "user", "content": p.text}], "gold": p.gold, "kind": p.kind} for p in prompts]
    path = resolve_model(cfg.model.name)
    with tempfile.TemporaryDirectory() as out:
        steps_run = trl_steps(objective, path, load_tokenizer(path), rows, reward, trl_config(objective, cfg, steps, out))
    return [s["step_s"] for s in steps_run]


def trl_steps(objective: str, path: str, tokenizer, rows: list[dict], reward, args) -> list[dict]:
    """Train TRL's GRPOTrainer / OnlineDPOTrainer (fp32 weights from `path`) as `args` says; per step its
    wall seconds and the seconds in TRL's own `transformers.generate` timer (TRL only sends its timers
    to trackers, so they are caught here for the run)."""
    import torch
    import trl.extras.profiling as trl_profiling
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback

    stamps: list[float] = []
    generate_ends: list[tuple[float, float]] = []  # (when it ended, seconds)

    class Stamp(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

    def caught(self, duration: float) -> None:
        if self.name.endswith(".transformers.generate"):
            generate_ends.append((time.perf_counter(), duration))

    if objective == "grpo":
        from trl import GRPOTrainer as Trainer
    else:
        from trl.experimental.online_dpo import OnlineDPOTrainer as Trainer
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    logged = trl_profiling.ProfilingContext._log_metrics
    trl_profiling.ProfilingContext._log_metrics = caught
    try:
        Trainer(model=model, reward_funcs=reward, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                callbacks=[Stamp()]).train()
    finally:
        trl_profiling.ProfilingContext._log_metrics = logged
    return [{"step_s": b - a, "generate_s": sum(s for end, s in generate_ends if a < end <= b)} for a, b in zip(stamps, stamps[1:])]


def against_trl(objective: str, preset: str, steps_per_block: int, rounds: int, sides: list[str]) -> list[dict]:
    """Alternate blocks of `steps_per_block` steps: TRL, semibench (HF), semibench (vLLM), `rounds` times."""
    from semibench.datafiles import read_spec
    from semibench.rewards import Rewarder
    from semibench.tasks import PromptSampler, constraint_type_strata, load_prompts
    base = config.resolve(preset, semibench_overrides(objective, "hf", steps_per_block))
    pools = load_prompts(base.task)
    sampler = PromptSampler(pools, base.train.prompts_per_step, base.task.math_fraction, base.train.order_seed,
                            constraint_type_strata(base.task, pools))
    prompts = [p for step in range(16) for p in sampler.batch(step)]  # the pool semibench's run draws from
    rewarder = Rewarder(base.reward, list(pools), read_spec("templates")["judge"]["pointwise"])
    if "semibench-vllm" in sides:
        _start_engine(config.resolve(preset, semibench_overrides(objective, "vllm", steps_per_block)))
    per_step = TRL_SHAPES[objective]["prompts"] * TRL_SHAPES[objective]["samples"]
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    phases: dict[str, list[dict]] = {side: [] for side in sides}
    loads = [load()]
    try:
        for _ in range(rounds):
            for side in sides:
                if side == "trl":
                    seconds[side] += _trl_block(objective, base, prompts, rewarder, steps_per_block)[1:]
                else:
                    engine = side.split("-")[1]
                    rows, step_s, _ = _timed_run(config.resolve(preset, semibench_overrides(objective, engine, steps_per_block)))
                    seconds[side] += step_s  # from the end of step 0 on: warm-up excluded
                    phases[side] += rows[1:]
                loads.append(load())
                print(f"{side}: step seconds so far {[round(x) for x in seconds[side]]}, load {loads[-1]}", file=sys.stderr, flush=True)
    finally:
        rewarder.close()
    out = []
    for side in sides:
        med = statistics.median(seconds[side])
        row = {"side": side, "steps": len(seconds[side]), "s_per_step": med, "samples_per_s": per_step / med, "load": " ".join(loads),
               "precision": compute_precision(base)}
        for key in PHASES:
            row[key] = statistics.median(r[key] for r in phases[side]) if phases[side] else None
        out.append(row)
    trl = next((r for r in out if r["side"] == "trl"), None)
    for row in out:
        row["ratio"] = row["samples_per_s"] / trl["samples_per_s"] if trl else None
    return out


# ---- weight sync --------------------------------------------------------------------------------

def sync(preset: str, reps: int, engines: list[str]) -> list[dict]:
    """Seconds per `load_weights` of the trainer's state dict, next to plain copies of that dict, alternated."""
    import torch

    from semibench.engines import load_generator
    from semibench.hardware import torch_dtype
    from semibench.models import load_causal_lm, resolve_model

    cfg = config.resolve(preset, {})
    path = resolve_model(cfg.model.name)
    policy = load_causal_lm(path, torch_dtype(cfg.model.dtype))
    with torch.no_grad():
        for p in policy.parameters():  # own memory, as a trained policy has (loaded weights may be file-backed)
            p.data = p.data.clone()
    state = policy.state_dict()
    dtype = torch_dtype(cfg.model.generator_dtype)
    generators = {engine: load_generator(path, engine, dtype, cfg.train.seed) for engine in engines}
    buffers = {k: torch.empty_like(v) for k, v in state.items()}
    times: dict[str, list[float]] = {"clone": [], "copy_": [], **{f"sync {e}": [] for e in engines}}
    engine_part: list[float] = []

    def timed(fn) -> float:
        tick = time.perf_counter()
        fn()
        return time.perf_counter() - tick

    before = load()
    for rep in range(reps + 1):  # rep 0 warms up
        measured = {
            "clone": timed(lambda: {k: v.clone() for k, v in state.items()}),
            "copy_": timed(lambda: [buffers[k].copy_(v) for k, v in state.items()]),
        }
        for engine, gen in generators.items():
            measured[f"sync {engine}"] = timed(lambda: gen.load_weights(rep + 1, state))
            if engine == "vllm" and rep:
                engine_part.append(gen.last_sync["seconds"])
        if rep:
            for key, value in measured.items():
                times[key].append(value)
    unique = {v.data_ptr(): v for v in state.values()}  # a tied head is one tensor, not two
    nbytes = sum(v.numel() * v.element_size() for v in unique.values())
    rows = []
    for key, values in times.items():
        med = statistics.median(values)
        rows.append({"what": key, "median_s": med, "min_s": min(values), "max_s": max(values), "n": len(values),
                     "vs_clone": med / statistics.median(times["clone"]), "vs_copy_": med / statistics.median(times["copy_"])})
    if engine_part:
        rows.append({"what": "  of which: engine reload_weights", "median_s": statistics.median(engine_part), "min_s": min(engine_part),
                     "max_s": max(engine_part), "n": len(engine_part), "vs_clone": None, "vs_copy_": None})
    for row in rows:
        row["state_mb"] = nbytes / 2**20
        row["generator_dtype"] = cfg.model.generator_dtype
        row["load"] = f"{before} -> {load()}"
    return rows


# ---- where the engine lives ---------------------------------------------------------------------

PLACEMENT_CHILD = r"""
import json, os, statistics, sys, time
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
import torch
from semibench.models import load_causal_lm, resolve_model
mode, reps = sys.argv[1], int(sys.argv[2])
from semibench.hardware import resolve_dtype
DT = resolve_dtype("auto")  # this machine's: bf16 autocast and engine where native, fp32 elsewhere
path = resolve_model("smollm2")
model = load_causal_lm(path, torch.float32).train()
ids = torch.randint(100, 40000, (4, 228))  # one smol micro-batch: 4 sequences of prompt + 128 tokens
def step():
    tick = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=DT == "bfloat16"):
        loss = model(input_ids=ids, use_cache=False).logits.float().logsumexp(-1).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - tick
out = {"mode": mode}
gen = None
if mode == "in-process engine":
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    from vllm import LLM
    llm = LLM(model=path, dtype=DT, max_model_len=1024, seed=0)
elif mode != "alone":
    from semibench.engines.base import Sampling
    from semibench.engines import load_generator
    gen = load_generator(path, "vllm", getattr(torch, DT))
step()
if mode == "engine process, generating":
    import threading
    prompts = [[1, 2, 3] + [100 + i] * 60 for i in range(16)]
    t0 = time.perf_counter(); gen.generate(prompts, 1, Sampling(max_new_tokens=128, seed=0)); out["generate_alone_s"] = time.perf_counter() - t0
    result = {}
    def generate():
        t = time.perf_counter(); gen.generate(prompts, 1, Sampling(max_new_tokens=128, seed=0)); result["s"] = time.perf_counter() - t
    thread = threading.Thread(target=generate); thread.start()
    t0 = time.perf_counter(); times = [step() for _ in range(reps)]; thread.join(); out["both_wall_s"] = time.perf_counter() - t0
    out["generate_concurrent_s"] = result["s"]
    t0 = time.perf_counter(); alone = [step() for _ in range(reps)]; out["train_alone_s"] = statistics.median(alone)
else:
    times = [step() for _ in range(reps)]
out["train_step_s"] = statistics.median(times)
out["torch_threads"] = torch.get_num_threads()
print("RESULT " + json.dumps(out))
"""

PLACEMENTS = ("alone", "in-process engine", "engine process, idle", "engine process, generating")


def placement(reps: int, rounds: int) -> list[dict]:
    """Each mode in a fresh process, the modes alternated `rounds` times; medians of the trainer's step."""
    results: dict[str, list[dict]] = {m: [] for m in PLACEMENTS}
    loads = [load()]
    env = dict(os.environ)
    for _ in range(rounds):
        for mode in PLACEMENTS:
            proc = subprocess.run([sys.executable, "-c", PLACEMENT_CHILD, mode, str(reps)], capture_output=True, text=True, env=env)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise RuntimeError(f"placement run '{mode}' failed:\n{proc.stderr[-3000:]}")
            results[mode].append(json.loads(line[len("RESULT "):]))
            loads.append(load())
    rows = []
    alone = statistics.median(r["train_step_s"] for r in results["alone"])
    for mode, runs in results.items():
        row = {"mode": mode, "train_step_s": statistics.median(r["train_step_s"] for r in runs), "torch_threads": runs[0]["torch_threads"]}
        row["vs_alone"] = row["train_step_s"] / alone
        for key in ("generate_alone_s", "generate_concurrent_s", "both_wall_s", "train_alone_s"):
            if key in runs[0]:
                row[key] = statistics.median(r[key] for r in runs)
        row["load"] = " ".join(loads)
        rows.append(row)
    return rows
