"""The main job: expand a grid spec into run configs, train and evaluate each idempotently, then aggregate.

    tasks x objectives x sync_every x seeds -> RunConfig (one run directory each, id = hash of config)

Defaults are the paper's grid: DPO offline (s = inf), semi-online at the task's values, online
(s = 1); GRPO online only, as in the paper (semi-online GRPO when `sync_every` is given). Everything
after training talks through files: a run is skipped when its DONE marker exists, resumed when it
does not, and evaluation skips benchmarks whose result JSON exists with the same settings, so a
killed grid re-run does only the work that is left. The seed model is evaluated once per base
model (the tables' first row and every validation curve's step 0).

Launchers: `local` (here) trains and evaluates in this process, one run after another (one vLLM
engine for everything); `slurm` (`semibench.slurm`) submits one submitit job per run.

Over 400 lines, in three marked parts: the presets' grid defaults and the expansion, the estimates
(dry-run model, measured steps, `grid_clock` for the progress ETA) and running. The next split is
the estimates into a module of their own, once `GridDefaults` moves out with them (they read it, and
the expansion reads it too, so moving them alone would make the two modules import each other).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from semibench import config
from semibench.benchmarks import VALIDATION
from semibench.config import ConfigError, RunConfig, regime_label
from semibench.runs import RunDir, atomic_write_json, export_steps, is_done, run_id
from semibench.wallclock import STEP_PHASES, GridClock, RunWork, WallSplit, made_since

INF = None  # sync_every never


@dataclass(frozen=True)
class GridDefaults:
    """What a preset's grid runs when the user does not say: the paper's choices, scaled to the hardware."""

    semi_online: dict[str, tuple[int, ...]]  # task -> semi-online sync intervals
    benchmarks: tuple[str, ...]
    eval: dict[str, Any]  # EvalSettings fields
    eval_every: int = 0  # also evaluate every K steps (validation curves); 0 = final checkpoint only
    seeds: tuple[int, ...] = (0,)  # training seeds per arm when --seeds is not given
    # Training seeds whose intermediate checkpoints are scored (the validation curves); None = every seed.
    # Every seed exports the same checkpoints (the runs differ only in train.seed, so they pool into one arm).
    validation_seeds: tuple[int, ...] | None = None
    # task -> the validation benchmark whose best checkpoint the tables report (the paper's protocol,
    # `semibench select`); absent: the final checkpoint.
    select_by: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)  # config keys every run of the grid gets
    # Throughput for the dry-run estimate when no finished run of the preset has been measured here,
    # as measured on a machine whose matmul ceiling in the run's compute dtype was `reference_gflops`;
    # the estimate scales them by this machine's own ceiling (0: not scaled, e.g. GPU presets).
    generate_tokens_per_s: float = 400.0  # a large batched call's rate
    # A decode step has a fixed cost, so a call of n sequences runs at rate * n / (n + this): an online
    # step's one small call generates at a fraction of a batched window's rate (0: no such effect).
    generate_half_rate_sequences: float = 0.0
    train_tokens_per_s: float = 250.0
    reference_gflops: float = 0.0
    gpus: int = 0  # > 0: the estimate is also reported in GPU hours


GRID_DEFAULTS: dict[str, GridDefaults] = {
    # Seconds per run: for tests of the grid machinery.
    "tiny": GridDefaults(
        semi_online={"math": (2,), "if": (2,), "mixed": (2,)},
        benchmarks=("math_heldout",),
        eval={"samples_per_prompt": 1, "temperature": 0.0, "max_new_tokens": 12, "limit": 16, "engine": "hf"},
        eval_every=0,
        generate_tokens_per_s=2000.0,
        train_tokens_per_s=20000.0,
    ),
    # The embedded default: SmolLM2-135M-Instruct on a 2-core CPU, 3 training seeds per arm (docs/pilot.md).
    "smol": GridDefaults(
        semi_online={"math": (4,), "if": (4,), "mixed": (4,)},
        # Each task's held-out split of its own training source: what the runs' rewards measure, on items no
        # run trained on. IFEval (in distribution for the constraint types, not for its prompts) is one
        # --benchmarks away; at 64 tokens most of its prompts cannot be followed.
        benchmarks=("math_heldout", "if_heldout"),
        # Greedy, so a checkpoint's score carries no sampling noise and the verdicts' seed variance is the
        # training seeds' (the paper's avg@N at T 0.6 is --eval-set temperature=0.6 --eval-set
        # samples_per_prompt=N). 64 tokens, as training; 300 items a benchmark. Scored at T 0.6 (avg@2), the
        # same checkpoints kept the same seed-to-seed spread at ~3x the evaluation time (docs/pilot.md, DS).
        eval={"samples_per_prompt": 1, "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 64, "heldout_size": 300},
        # 3 training seeds per arm: one seed cannot measure seed-to-seed variance, and 1 vs 1 says
        # "better" 22% of the time under a null with a 4-point seed shift (docs/verdicts.md).
        seeds=(0, 1, 2),
        # Validation curves: both benchmarks at step 10 of every run's seed 0 (step 0 is the seed row,
        # step 20 the final evaluation): the cost curves, without scoring every seed's midpoint.
        eval_every=10,
        validation_seeds=(0,),
        # Fitted to the default grid on the 2-core Xeon in fp32 (2026-12-04): 167 tokens/s at 16 sequences
        # a call (online), ~300 at 64-256 (semi-online, offline windows).
        generate_tokens_per_s=340.0,
        generate_half_rate_sequences=16.0,
        reference_gflops=380.0,  # that Xeon's fp32 matmul ceiling
    ),
    # The paper (Table 4, §2): semi-online s in {10, 100} on math and {5, 10} on chat; mixed at 10,
    # the value both task grids share. Eval avg@50 at T 0.6, top-p 0.9 on Tables 1-2's benchmarks
    # (Math500, NuminaMath test, AMC23; AlpacaEval 2.0, ArenaHard). 32 train + 8 inference H200.
    "paper": GridDefaults(
        semi_online={"math": (10, 100), "if": (5, 10), "mixed": (10,)},
        benchmarks=("math500_paper", "numina_test", "amc23", "alpaca_eval", "arena_hard"),
        eval={"samples_per_prompt": 50, "temperature": 0.6, "top_p": 0.9, "max_new_tokens": 2048},
        eval_every=0,  # the preset exports every 100 steps (train.checkpoint_every): each is scored for selection
        # §3.1: chat by length-normalised RM reward on 470 WildChat prompts; math by the NuminaMath
        # validation split (not stated: paper.md infers it); mixed runs by their math validation.
        select_by={"math": "numina_valid", "if": "wildchat_valid", "mixed": "numina_valid"},
        generate_tokens_per_s=8 * 2500.0,
        train_tokens_per_s=32 * 2500.0,
        gpus=40,
    ),
}


@dataclass(frozen=True)
class GridSpec:
    tasks: tuple[str, ...] = ("mixed",)
    objectives: tuple[str, ...] = ("dpo", "grpo")
    sync_every: tuple[int | None, ...] | None = None  # None: the paper's default per task and objective
    preset: str = "smol"
    seeds: tuple[int, ...] | None = None  # None: the preset's (GridDefaults.seeds)
    overrides: dict[str, Any] = field(default_factory=dict)  # `--set` for every run


def defaults_for(preset: str) -> GridDefaults:
    return GRID_DEFAULTS.get(preset, GRID_DEFAULTS["smol"])


def scores_curve(cfg: RunConfig) -> bool:
    """Whether this run's intermediate checkpoints are scored (its seed is one of the preset's validation seeds)."""
    seeds = defaults_for(cfg.preset).validation_seeds
    return seeds is None or cfg.train.seed in seeds


def seeds_of(spec: GridSpec) -> tuple[int, ...]:
    return spec.seeds if spec.seeds is not None else defaults_for(spec.preset).seeds


def sync_values(spec: GridSpec, task: str, objective: str) -> tuple[int | None, ...]:
    """Offline, semi-online at the task's values, online; GRPO online only unless asked."""
    if spec.sync_every is not None:
        return spec.sync_every
    if objective == "grpo":
        return (1,)
    return (INF, *defaults_for(spec.preset).semi_online[task], 1)


def run_overrides(spec: GridSpec, task: str, objective: str, sync_every: int | None, seed: int) -> dict[str, Any]:
    """The config overrides that define one run of the grid (also what the Slurm job passes to `train`)."""
    d = defaults_for(spec.preset)
    # Validation curves need checkpoints every eval_every steps; otherwise keep the preset's own value.
    out = ({"train.checkpoint_every": d.eval_every} if d.eval_every else {}) | d.overrides | spec.overrides
    if "log.report_to" in spec.overrides and "log.group" not in spec.overrides:  # trackers group the grid's runs (not in the run id)
        out["log.group"] = grid_group(spec)
    out |= {"task.name": task, "loss.objective": objective, "train.sync_every": "inf" if sync_every is None else sync_every, "train.seed": seed}
    return out


def grid_group(spec: GridSpec) -> str:
    """The trackers' group of a grid's runs: preset and tasks, so a re-run or an added seed lines up with the rest."""
    return f"grid-{spec.preset}-{'+'.join(spec.tasks)}"


def report_evaluations(cfg: RunConfig, out: Path) -> int:
    """A run's evaluation results on disk, and the seed model's as step 0, into the run's trackers (log.report_to)
    as eval/<bench> and eval/<bench>_se_items at the checkpoint's step; each result once. Returns the rows logged."""
    from semibench import trackers

    if not trackers.requested(cfg):
        return 0
    from semibench.reports.results import read_evals

    points = {0: read_evals(seed_dir(out, cfg.model.name) / "eval").get(0, {})}
    for step, results in read_evals(RunDir(out, cfg).evals).items():
        points[step] = points.get(step, {}) | results
    return trackers.log_evaluations(cfg, out, {s: r for s, r in points.items() if r})


def expand(spec: GridSpec) -> list[RunConfig]:
    """The grid's run configs in a fixed order: task, objective, offline -> online, seed."""
    for task in spec.tasks:
        if task not in config.TASKS:
            raise ConfigError(f"unknown task '{task}' in --tasks; choose from {', '.join(config.TASKS)}")
    config.check_objectives(spec.objectives)
    configs = []
    for task in spec.tasks:
        for objective in spec.objectives:
            for s in sync_values(spec, task, objective):
                for seed in seeds_of(spec):
                    configs.append(config.resolve(spec.preset, run_overrides(spec, task, objective, s, seed)))
    return configs


def parse_sync_list(text: str | None) -> tuple[int | None, ...] | None:
    if text is None or not text.strip():
        return None
    return tuple(config.parse_sync_every(x) for x in text.split(","))


# ---------------------------------------------------------------------------------------------
# Estimates


def arm_of(cfg: RunConfig) -> str:
    """Runs that differ only in their training seed: they step at the same cost (and pool in the reports)."""
    s = "inf" if cfg.train.sync_every is None else cfg.train.sync_every
    return f"{cfg.task.name}-{cfg.loss.objective}-s{s}-{cfg.model.generator_dtype}-{cfg.model.autocast_dtype or cfg.model.dtype}"


def step_seconds(row: dict) -> float:
    return sum(row.get(k, 0.0) for k in STEP_PHASES)


def measured_step_seconds(out: Path, cfg: RunConfig) -> float | None:
    """Mean seconds per step of runs of the same preset, objective and precision under `out`; of the
    same arm (sync interval too) when there are some, as an online step costs more than an offline one."""
    same_arm, same_objective = [], []
    for metrics in Path(out).glob(f"*-{cfg.loss.objective}-*-{cfg.preset}-*/metrics.jsonl"):
        run = RunDir.at(metrics.parent)
        other = run.read_config()
        if (other.model.generator_dtype, other.model.autocast_dtype) != (cfg.model.generator_dtype, cfg.model.autocast_dtype):
            continue  # an fp32 run's speed says nothing of a bf16 one's
        seconds = [step_seconds(r) for r in run.read_metrics()]
        same_objective += seconds
        same_arm += seconds if arm_of(other) == arm_of(cfg) else []
    seconds = same_arm or same_objective
    # The mean: a window's one generate call lands on its first step (offline: 1 step in 16 generates).
    return statistics.fmean(seconds) if seconds else None


def sequences_per_call(cfg: RunConfig) -> int:
    """Sequences one generate call makes: a step's samples online; a window's chunk of steps otherwise."""
    window = cfg.train.sync_every or cfg.train.steps
    return cfg.train.prompts_per_step * cfg.sampling.samples_per_prompt * max(1, min(window, cfg.train.rollout_chunk_steps, cfg.train.steps))


def modelled_step_seconds(cfg: RunConfig) -> float:
    """Generated tokens at half the length limit, at the rate of its call's size; trained once (DPO: one
    pair per prompt; GRPO and GroupDPO: the group, each sample one row)."""
    d = defaults_for(cfg.preset)
    samples = cfg.train.prompts_per_step * cfg.sampling.samples_per_prompt
    generated = samples * cfg.sampling.max_new_tokens * 0.5
    per_call = sequences_per_call(cfg)
    generate_rate = d.generate_tokens_per_s * per_call / (per_call + d.generate_half_rate_sequences)
    trained_sequences = 2 * cfg.train.prompts_per_step if cfg.loss.objective == "dpo" else samples
    trained = trained_sequences * (cfg.sampling.max_new_tokens * 0.5 + 100)  # + a prompt of ~100 tokens
    seconds = generated / generate_rate + trained / d.train_tokens_per_s
    if not d.reference_gflops:
        return seconds
    from semibench.hardware import matmul_ceiling_gflops

    return seconds * d.reference_gflops / matmul_ceiling_gflops(cfg.model.autocast_dtype or cfg.model.dtype, seconds=1.0)


def estimate(out: Path, cfg: RunConfig) -> tuple[float, str]:
    """(seconds, how) for one run's training."""
    measured = measured_step_seconds(out, cfg)
    if measured is not None:
        return measured * cfg.train.steps, "measured"
    return modelled_step_seconds(cfg) * cfg.train.steps, "modelled"


def describe(spec: GridSpec, out: Path) -> list[dict]:
    """One row per run for --dry-run and the progress view."""
    rows = []
    for cfg in expand(spec):
        seconds, how = estimate(out, cfg)
        rid = run_id(cfg)
        rows.append({
            "run_id": rid, "task": cfg.task.name, "objective": cfg.loss.objective,
            "sync_every": "inf" if cfg.train.sync_every is None else str(cfg.train.sync_every),
            "regime": regime_label(cfg.train.sync_every), "steps": cfg.train.steps, "seed": cfg.train.seed,
            "seconds": seconds, "estimate": how, "done": is_done(Path(out) / rid),
        })
    return rows


def evaluations_left(cfg: RunConfig, out: Path, benchmarks, judge: str | None = None) -> tuple[str, ...]:
    """The benchmark of each evaluation `evaluate_run` has yet to make of this run (no result file yet)."""
    from semibench.evals.settings import result_stem

    d = defaults_for(cfg.preset)
    select_by = d.select_by.get(cfg.task.name)
    curve = scores_curve(cfg)
    planned: list[tuple[int | None, str]] = []
    for step in export_steps(cfg):
        if select_by:
            planned.append((step, select_by))
        elif step == cfg.train.steps:
            planned += [(step, b) for b in benchmarks]
        elif curve:
            planned += [(step, b) for b in benchmarks if b in VALIDATION]
    planned += [(None, b) for b in benchmarks] if select_by else []  # the selected checkpoint, not known yet
    run = RunDir(out, cfg)
    return tuple(b for step, b in planned if step is None or not (run.eval_dir(step) / f"{result_stem(b, judge)}.json").is_file())


def grid_clock(configs: list[RunConfig], out: Path, benchmarks, judge: str | None = None) -> GridClock:
    """The grid's clock, with what earlier invocations left under `out`: their steps and evaluations."""
    clock = GridClock([])
    for cfg in configs:
        run = RunDir(out, cfg)
        rows = run.read_metrics() if run.metrics_path.is_file() else []
        left = evaluations_left(cfg, out, benchmarks, judge)
        clock.runs.append(RunWork(arm_of(cfg), cfg.train.steps, left, modelled_step_seconds(cfg),
                                  steps_done=min(len(rows), cfg.train.steps), evaluated=is_done(run.path) and not left))
        if is_done(run.path):  # a finished run's steps measure its arm (GridClock.trained says why only those)
            clock.step_s.setdefault(arm_of(cfg), []).extend(step_seconds(r) for r in rows)
    # This grid's evaluations only (a tiny grid's 16-item held-out math under the same --out says
    # nothing of smol's): its runs' and its seed rows'.
    dirs = [RunDir(out, cfg).evals for cfg in configs] + [seed_dir(out, name) / "eval" for name in {cfg.model.name for cfg in configs}]
    for path in (p for d in dirs for p in d.glob("**/*.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):  # an ETA never stops a grid
            continue
        if isinstance(result, dict) and {"benchmark", "seconds", "date"} <= result.keys():
            clock.measured([result])
    return clock


# ---------------------------------------------------------------------------------------------
# Running


def eval_settings(spec: GridSpec, overrides: dict[str, Any]):
    from semibench.evals.settings import EvalSettings

    return EvalSettings(**{**defaults_for(spec.preset).eval, **overrides})


def seed_dir(out: Path, model_name: str) -> Path:
    return Path(out) / f"seed-{model_name.replace('/', '--')}"


def seed_record(cfg: RunConfig) -> dict[str, Any]:
    """seed.json: what the seed row's benchmarks take from the grid (held-out math's training source, the reward model)."""
    d = config.to_dict(cfg)
    return {"model": cfg.model.name, "task": d["task"], "seed": cfg.train.seed, "reward": d["reward"], "chat_template": cfg.model.chat_template}


def seed_settings(cfg: RunConfig, settings):
    """The seed row is prompted like the trained checkpoints: they carry the preset's `model.chat_template`
    in their tokenizer; the hub model does not, so its evaluation applies it (unless the settings name one)."""
    import dataclasses

    if cfg.model.chat_template and not settings.chat_template:
        return dataclasses.replace(settings, chat_template=cfg.model.chat_template)
    return settings


def evaluate_seed(cfg: RunConfig, out: Path, benchmarks, settings, progress=None) -> dict[str, dict]:
    """The untrained model's scores, once per base model: the tables' first row, every curve's step 0."""
    from semibench.evals.data import seed_origin
    from semibench.evals.evaluate import evaluate
    from semibench.models import resolve_model

    path = seed_dir(out, cfg.model.name)
    record = seed_record(cfg)
    atomic_write_json(path / "seed.json", record)  # the row's record for the reports (and `semibench eval --origin`)
    # The seed row's held-out sets are the grid's: its training source, handed over as the origin.
    return evaluate(Path(resolve_model(cfg.model.name)), benchmarks, seed_settings(cfg, settings), out_dir=path / "eval", progress=progress,
                    origin=seed_origin(record, path / "seed.json"))


def evaluate_run(cfg: RunConfig, out: Path, benchmarks, settings, progress=None, select_by: str | None = None) -> list[dict]:
    """Final checkpoint on every benchmark; intermediate checkpoints on the validation benchmarks only.

    With `select_by` (a validation benchmark), as the paper: every checkpoint is scored on it, the best
    is recorded in selected.json, and that one (not the final one) is scored on every benchmark.
    Returns every result it evaluated or found.
    """
    from semibench.evals.evaluate import evaluate

    run = RunDir(out, cfg)
    results: list[dict] = []
    if select_by:
        from semibench.reports.results import select_checkpoint

        for checkpoint in run.done_checkpoints():
            results += evaluate(checkpoint, [select_by], settings, progress=progress).values()
        chosen = select_checkpoint(run.path, select_by)
        chosen.record()
        return results + list(evaluate(chosen.checkpoint, benchmarks, settings, progress=progress).values())
    validation = [b for b in benchmarks if b in VALIDATION and scores_curve(cfg)]
    for checkpoint in run.done_checkpoints():
        if checkpoint == run.checkpoint(cfg.train.steps):
            results += evaluate(checkpoint, benchmarks, settings, progress=progress).values()
        elif validation:  # none asked for: intermediate checkpoints are for selection and resume only
            results += evaluate(checkpoint, validation, settings, progress=progress).values()
    return results


@dataclass
class GridHooks:
    """Callbacks for a progress view; all optional."""

    on_run_start: Callable[[int, RunConfig], None] = lambda i, cfg: None
    on_step: Callable[[int, dict], None] = lambda step, row: None
    on_phase: Callable[[str], None] = lambda text: None
    on_run_end: Callable[[int, RunConfig], None] = lambda i, cfg: None
    on_eval: Callable[[str, int, int], None] = lambda label, done, total: None  # prompts done of a benchmark


def unscored_steps(spec: GridSpec, cfg: RunConfig) -> list[int]:
    """The intermediate checkpoints of `cfg` that nothing reads once the run is evaluated. The grid gives every
    seed of an arm its validation cadence (the runs must differ only in train.seed to pool into one arm), but
    scores those checkpoints for the validation seeds only. None when the cadence is the user's or the
    preset's own (`train.checkpoint_every` set) or the preset selects a checkpoint by them."""
    d = defaults_for(spec.preset)
    own_cadence = "train.checkpoint_every" in (d.overrides | spec.overrides)
    if not d.eval_every or own_cadence or d.select_by.get(cfg.task.name) or scores_curve(cfg):
        return []
    return [step for step in export_steps(cfg) if step != cfg.train.steps]


def disk_needed(spec: GridSpec, out: Path) -> int:
    """Bytes the grid's unfinished runs still write under `out`, at most: the checkpoints that stay, and for
    the one training at a time its resumable states (a finished run drops them) and the checkpoints it
    drops once evaluated (`unscored_steps`). A model that is no local checkpoint (a hub id) counts 0 here;
    its runs check for themselves."""
    import torch

    from semibench.models import checkpoint_params, resolve_model
    from semibench.training.checkpoint import state_bytes, states_held
    from semibench.training.train import keeps_window_model

    configs = expand(spec)
    params = {name: checkpoint_params(resolve_model(name)) for name in {c.model.name for c in configs}}  # each header read once
    kept, transient = 0, 0
    for cfg in configs:
        if is_done(RunDir(out, cfg).path):
            continue
        weights = params[cfg.model.name] * getattr(torch, cfg.model.dtype).itemsize
        dropped = len(unscored_steps(spec, cfg))
        kept += (len(export_steps(cfg)) - dropped) * weights
        states = states_held(cfg.train.resume_every, cfg.train.steps) * state_bytes(weights, keeps_window_model(cfg))
        transient = max(transient, states + dropped * weights)
    return kept + transient


def run_local(spec: GridSpec, out: Path, benchmarks, settings, hooks: GridHooks | None = None, split: WallSplit | None = None,
              clock: GridClock | None = None) -> list[RunConfig]:
    """Train and evaluate every run of the grid in this process; skip what is done, resume what is not.
    `split`, when given, collects where the wall clock went; `clock` (`grid_clock`) learns what is left."""
    from semibench.training.checkpoint import check_free_space
    from semibench.training.train import train

    hooks = hooks or GridHooks()
    split = split if split is not None else WallSplit()
    configs = expand(spec)
    # Before the seed model's evaluation, not at the 11th run: a default grid keeps 8.6 GB of checkpoints.
    left = sum(not is_done(RunDir(out, cfg).path) for cfg in configs)
    check_free_space(out, disk_needed(spec, out), f"the grid's {left} unfinished runs write")
    clock = clock if clock is not None else grid_clock(configs, out, benchmarks, settings.judge)
    for model in dict.fromkeys(c.model.name for c in configs):
        hooks.on_phase(f"evaluating the seed model {model}")
        tick = time.monotonic()
        results = evaluate_seed(next(c for c in configs if c.model.name == model), out, benchmarks, settings, progress=hooks.on_eval)
        split.add_evaluations(results.values(), time.monotonic() - tick)
        clock.measured(made_since(results.values(), split.started))
    for i, cfg in enumerate(configs):
        hooks.on_run_start(i, cfg)
        run = RunDir(out, cfg)
        trained_here = not is_done(run.path)
        if trained_here:
            def on_step(step: int, row: dict, i: int = i) -> None:
                clock.stepped(i, step_seconds(row))
                hooks.on_step(step, row)

            first_step, tick = len(run.read_metrics()) if run.metrics_path.is_file() else 0, time.monotonic()
            train(cfg, out, progress=on_step)
            clock.trained(i, split.add_training(run, first_step, time.monotonic() - tick))
        hooks.on_phase("evaluating")
        tick = time.monotonic()
        clock.start_evaluating(i, tick)
        results = evaluate_run(cfg, out, benchmarks, settings, progress=hooks.on_eval, select_by=defaults_for(spec.preset).select_by.get(cfg.task.name))
        split.add_evaluations(results, time.monotonic() - tick)
        clock.measured(made_since(results, split.started))
        clock.evaluated(i)
        # The default grid keeps 8.6 GB, not 13 (5 seeds: 13, not 22). Only runs this call trained: a finished
        # run's midpoints may be the ones a `--set train.checkpoint_every=10` asked for (the same run id).
        for step in unscored_steps(spec, cfg) if trained_here else ():
            run.drop_checkpoint(step)
        report_evaluations(cfg, out)
        hooks.on_run_end(i, cfg)
    return configs


def aggregate(out: Path, leaderboard_dir: Path) -> dict[str, Any]:
    """Leaderboard CSVs, figures and tables from the run directories."""
    from semibench.reports.leaderboard import write_leaderboards
    from semibench.reports.plots import write_plots
    from semibench.reports.signal import write_signal
    from semibench.reports.tables import write_tables
    from semibench.reports.verdicts import write_verdicts

    return {
        "leaderboards": write_leaderboards(out, leaderboard_dir),
        "figures": write_plots(out, Path(out) / "figures"),
        "tables": write_tables(out, Path(out) / "tables"),
        "signal": write_signal(out, Path(out) / "tables"),
        "verdicts": write_verdicts(out, Path(out) / "tables"),
    }


def with_defaults(spec: GridSpec, benchmarks: str | None) -> tuple[str, ...]:
    return tuple(b for b in benchmarks.split(",") if b) if benchmarks else defaults_for(spec.preset).benchmarks
