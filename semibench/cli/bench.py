"""`semibench bench ...`: benchmarks that print tables (never timed tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from semibench.cli.common import app, comma_list, fail, quiet_transformers, table
from semibench.config import ConfigError

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print tables.")
app.add_typer(bench_app, name="bench")



@bench_app.command("step")
def bench_step(
    preset: str = typer.Option("smol"),
    task: str = typer.Option("math"),
    steps: int = typer.Option(3, help="steps per objective; the first is excluded from the medians"),
    objectives: str = typer.Option("dpo,grpo", help="comma-separated, e.g. dpo,grpo,group_dpo"),
    set_: list[str] = typer.Option([], "--set"),
) -> None:
    """Seconds per online step of each objective (DPO and GRPO unless told), split into sync / generate / reward / train."""
    from semibench import config
    from semibench import perf as bench

    if steps < 2:
        fail("--steps must be >= 2: the first step pays warm-up and is excluded from the medians")
    quiet_transformers()
    names = comma_list(objectives)
    if not names:
        fail(f"--objectives needs at least one of {', '.join(config.OBJECTIVES)}")
    try:
        config.check_objectives(names)  # before any run trains
        rows = bench.step_breakdown(preset, task, steps, config.parse_set_args(set_), names)
    except ConfigError as exc:
        fail(str(exc))
    table(f"one online step, preset {preset}, task {task} (medians)",
          ["objective", "steps", "sync s", "generate s", "reward s", "train s", "total s", "gen tok/s", "gen ceiling tok/s", "gen % of ceiling",
           "tokens", "reward", "train GFLOP/s", "ceiling GFLOP/s", "train % of ceiling"],
          [[r["objective"], r["steps"], *(r[k] for k in bench.PHASES), r["total_s"], r["generate_tokens_per_s"], f"{r['generate_ceiling_tokens_per_s']:.0f}",
            r["generate_pct_of_ceiling"], f"{r['generated_tokens']:.0f}", f"{r['reward']:.3f}", r["train_gflops"], f"{r['ceiling_gflops']:.0f}",
            r["pct_of_ceiling"]] for r in rows],
          f"gen tok/s = generated tokens / generate s; its ceiling = a 2048^2 matmul's GFLOP/s in {rows[0]['generator_dtype']} / (2 x params) "
          f"FLOPs per token. train GFLOP/s = 8 x params x trained tokens / train s (policy fwd+bwd, reference fwd); its ceiling: a 2048^2 "
          f"matmul in {rows[0]['compute_dtype']}. Both ceilings measured in this run.")


@bench_app.command("pipeline")
def bench_pipeline(
    preset: str = typer.Option("smol"),
    steps: int = typer.Option(16),
    sync_every: str = typer.Option("1,4,8,16", "--sync-every", help="comma-separated s values; the first is the baseline"),
    set_: list[str] = typer.Option([], "--set"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the rows and every run's per-step metrics here"),
) -> None:
    """Wall time of the same run (same seeds) at each s on the vLLM engine with pipelined windows."""
    import json

    from semibench import config
    from semibench import perf as bench

    quiet_transformers()
    try:
        rows = bench.pipeline(preset, steps, [v for v in sync_every.split(",") if v], config.parse_set_args(set_))
    except ConfigError as exc:
        fail(str(exc))
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=1))
    mode = "generated ahead in a thread" if rows[0]["ahead"] else "generated inline"
    table(f"sync windows: {steps} steps of {preset} on vLLM, up to {rows[0]['chunk_steps']} steps per generate call, {mode} (sums over steps, seconds)",
           ["s", "wall s", "vs first", "generate wait", "generator busy", "reward", "train", "sync", "tokens", "reward mean", "load 1/5/15 min"],
           [[r["s"], r["wall_s"], r["ratio"], r["time/generate"], r["time/generator_busy"], r["time/reward"], r["time/train"], r["time/sync"],
             int(r["generated_tokens"]), r["reward"], r["load"]] for r in rows],
           f"engine start (once, not in the walls): {rows[0]['engine_start_s']:.0f} s")
    means = bench.mean_by_s(rows)
    if any(m["runs"] > 1 for m in means):
        table("mean over the runs of each s", ["s", "runs", "wall s", "vs first", "generate wait", "generator busy", "reward", "train", "sync"],
               [[m["s"], m["runs"], m["wall_s"], m["ratio"], m["time/generate"], m["time/generator_busy"], m["time/reward"], m["time/train"], m["time/sync"]] for m in means])


@bench_app.command("trl")
def bench_trl(
    objective: str = typer.Option("grpo", help="grpo | dpo (online DPO vs TRL's OnlineDPOTrainer)"),
    preset: str = typer.Option("smol"),
    steps: int = typer.Option(3, help="steps per block; each block's first step is excluded"),
    rounds: int = typer.Option(2, help="times the sides alternate"),
    sides: str = typer.Option("trl,semibench-hf,semibench-vllm"),
) -> None:
    """Samples/s against TRL 1.16 (pip install trl==1.16.0): same model, prompts, lengths, samples, batch."""
    from semibench import perf as bench

    if steps < 2:
        fail("--steps must be >= 2: each block's first step pays warm-up and is excluded from the medians")
    if objective not in bench.TRL_SHAPES:
        fail(f"--objective must be one of {', '.join(bench.TRL_SHAPES)}")
    chosen = [x for x in sides.split(",") if x]
    if "trl" in chosen:
        import importlib.util

        if importlib.util.find_spec("trl") is None:
            fail("the TRL comparison needs TRL: pip install trl==1.16.0 (a bench-only dependency)")
    quiet_transformers()
    rows = bench.against_trl(objective, preset, steps, rounds, chosen)
    shape = bench.TRL_SHAPES[objective]
    table(f"online {objective.upper()} vs TRL 1.16, {preset}: {shape['prompts']} prompts x {shape['samples']} samples/step (medians)",
           ["side", "steps", "s/step", "samples/s", "vs TRL", "generate", "reward", "train", "sync"],
           [[r["side"], r["steps"], r["s_per_step"], r["samples_per_s"], r["ratio"], r["time/generate"], r["time/reward"], r["time/train"], r["time/sync"]] for r in rows],
           f"both sides compute in {rows[0]['precision']} (semibench's `auto` on this machine; TRL's bf16 flag follows it). "
           f"Load 1/5/15 min between blocks: {rows[0]['load']}")


@bench_app.command("gpu")
def bench_gpu(
    out: Path = typer.Option(..., "--out", help="directory for gpu_bench.json and gpu_bench.md"),
    shape: str = typer.Option("1b", help="tiny (the CPU dry run) | smol (SmolLM2-135M's config) | 1b (Llama-3.2-1B's shapes)"),
    minutes: float = typer.Option(8.0, help="budget: parts not started by then are skipped and listed"),
    steps: Optional[int] = typer.Option(None, help="measured steps per part (default: the shape's); warm-up steps come first"),
) -> None:
    """Trainer MFU and step throughput against TRL on this device, random-init models, no download (docs/scale.md)."""
    from semibench.gpubench import run
    from semibench.gpubench.workload import load_shape

    if minutes <= 0:
        fail("--minutes must be > 0")
    if steps is not None and steps < 1:
        fail("--steps must be >= 1")
    try:
        load_shape(shape)
    except ConfigError as exc:
        fail(str(exc))
    import torch

    if shape != "tiny" and not torch.cuda.is_available():
        fail(f"--shape {shape} needs a CUDA GPU (on a CPU it would run for hours); the CPU dry run is --shape tiny")
    quiet_transformers()
    record = run(out, shape, minutes, steps, log=lambda line: typer.echo(line, err=True))
    from semibench.gpubench.report import markdown

    typer.echo(markdown(record))


@bench_app.command("sync")
def bench_sync(
    preset: str = typer.Option("smol"),
    reps: int = typer.Option(5),
    engines: str = typer.Option("vllm,hf"),
) -> None:
    """Seconds per generator weight sync against a plain in-memory copy (clone / copy_) of the same state dict."""
    from semibench import perf as bench

    quiet_transformers()
    rows = bench.sync(preset, reps, [e for e in engines.split(",") if e])
    table(f"weight sync, {preset}: {rows[0]['state_mb']:.0f} MB fp32 trainer state -> {rows[0]['generator_dtype']} generator",
           ["what", "median s", "min s", "max s", "n", "x clone", "x copy_"],
           [[r["what"], r["median_s"], r["min_s"], r["max_s"], r["n"], r["vs_clone"], r["vs_copy_"]] for r in rows],
           f"load 1/5/15 min: {rows[0]['load']}")


@bench_app.command("placement")
def bench_placement(
    reps: int = typer.Option(5, help="trainer steps per measurement"),
    rounds: int = typer.Option(2, help="times the placements alternate"),
) -> None:
    """The trainer's step time next to the vLLM engine: in its process, or in a process of its own."""
    from semibench import perf as bench

    rows = bench.placement(reps, rounds)
    table("trainer fwd+bwd of one smol micro-batch (4 x 228 tokens, auto precision) next to a vLLM engine (medians)",
           ["engine", "train step s", "x alone", "torch threads", "generate alone s", "generate while training s", "both wall s", "train alone s"],
           [[r["mode"], r["train_step_s"], r["vs_alone"], r["torch_threads"], r.get("generate_alone_s"), r.get("generate_concurrent_s"),
             r.get("both_wall_s"), r.get("train_alone_s")] for r in rows],
           f"load 1/5/15 min between runs: {rows[0]['load']}")


@bench_app.command("math-fuzz")
def bench_math_fuzz(
    items: int = typer.Option(5000, help="hostile completions and controls (one in four a control)"),
    seed: int = typer.Option(0),
    workers: int = typer.Option(2),
    timeout_s: float = typer.Option(5.0, "--timeout-s", help="per-item deadline (the training default)"),
) -> None:
    """The Math-Verify reward against a large seeded corpus of hostile answers: crashes, hangs, worst item, controls lost."""
    import time

    from semibench.rewards.fuzz import corpus
    from semibench.rewards.math import MathVerifier

    rows = corpus(items, seed)
    with MathVerifier(num_workers=workers, timeout_s=timeout_s) as verifier:
        tick = time.perf_counter()
        scores = verifier([c for c, _, _ in rows], [g for _, g, _ in rows])
        seconds = time.perf_counter() - tick
        timeouts = verifier.num_timeouts
    lost = sum(1 for s, (_, _, expected) in zip(scores, rows) if expected == 1.0 and s != 1.0)
    controls = sum(1 for _, _, expected in rows if expected == 1.0)
    table(f"Math-Verify reward vs {items} seeded hostile items (seed {seed}, {workers} workers, {timeout_s:g} s deadline)",
          ["items", "controls", "controls lost", "scored 1 (hostile)", "killed at deadline", "seconds", "items/s"],
          [[items, controls, lost, sum(1 for s, (_, _, e) in zip(scores, rows) if e is None and s == 1.0), timeouts, seconds, items / seconds]])



@bench_app.command("verdicts")
def bench_verdicts(
    seeds: str = typer.Option("1v1,2v2,3v3,3v0,5v5", help="training seeds per side, A v B; 0 = the untrained seed model"),
    effect: float = typer.Option(8.0, help="the true effect, in points, for the coverage and power rows"),
    seed_sd: float = typer.Option(4.0, "--seed-sd", help="the SD of one training seed's shift of its arm, in points"),
    correlations: str = typer.Option("-0.5,0,0.5,0.9", help="for equal trained sides: the correlation of the two arms' shifts at one "
                                     "training seed, each tested by Welch and paired over seeds ('' for none)"),
    items: int = typer.Option(160, help="items per evaluation (one binary sample each)"),
    reps: int = typer.Option(2000, help="simulated comparisons per row"),
) -> None:
    """How often a verdict is wrong: false "better" under a null with a per-seed shift, coverage and power under a true effect."""
    from semibench.calibration import simulate
    from semibench.stats import MIN_SEEDS

    rows = []

    def add(label: str, a: int, b: int, correlation: float = 0.0, paired: bool = False) -> None:
        null, true = (simulate(a, b, shift, seed_sd, items, reps, seed=k, seed_correlation=correlation, paired=paired)
                      for k, shift in ((1, 0.0), (2, effect)))
        rows.append([label, 100 * null["resolved"], 100 * null["resolved_unqualified"], 100 * null["coverage"],
                     100 * true["coverage"], 100 * true["resolved"], 100 * true["wrong_sign"], true["median_mde"]])

    for pair in (p for p in seeds.split(",") if p):
        a, b = (int(x) for x in pair.split("v"))
        add(f"{a} vs {'seed model' if b == 0 else b}", a, b)
        if a == b >= MIN_SEEDS:
            for r in (float(x) for x in correlations.split(",") if x):
                if r:  # r = 0 under Welch is the row above
                    add(f"{a} vs {b}, r {r:+g}: Welch", a, b, r)
                add(f"{a} vs {b}, r {r:+g}: paired", a, b, r, paired=True)
    table(f"verdict calibration: {items} items x 1 binary sample, solve rates U(2%, 30%), seed shift SD {seed_sd:g} points, {reps} comparisons a row",
          ["seeds A vs B", "null: % 'better'", "null: % bare 'better'", "null: CI coverage %", f"+{effect:g}: CI coverage %", f"+{effect:g}: % resolved (power)",
           f"+{effect:g}: % wrong sign", f"+{effect:g}: median MDE"], rows,
          "one test per comparison (semibench.stats.compare_scores), alpha 0.05, no family adjustment; 'bare' = without the '(1 training seed)' "
          "qualifier; r = the correlation of the two arms' shifts at one shared training seed (rows without r: independent). "
          "Nominal: 5% 'better' under the null, 95% coverage.")
