"""The grid's Slurm launcher: one submitit job per run (torchrun inside, eval after), then wait.

submitit's `local` cluster runs the same job commands as local subprocesses, which is how this path
is tested without Slurm. Every job is idempotent (training resumes or skips, eval skips finished
benchmarks), so re-running a grid after a failure redoes only what is missing.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from semibench.config import RunConfig
from semibench.grid import GridSpec, defaults_for, expand, run_overrides, seed_dir, seed_record, seed_settings
from semibench.runs import RunDir, run_id



@dataclass(frozen=True)
class SlurmSettings:
    partition: str = ""
    nodes: int = 1
    gpus_per_node: int = 8
    cpus_per_task: int = 16
    time_min: int = 24 * 60
    cluster: str | None = None  # None = auto (slurm when sbatch exists); "local" runs jobs as local processes


def job_command(spec: GridSpec, cfg: RunConfig, out: Path, benchmarks, settings, slurm: SlurmSettings) -> str:
    """The shell command of one run's job: torchrun training on every node, then eval on node 0."""
    task, objective, s, seed = cfg.task.name, cfg.loss.objective, cfg.train.sync_every, cfg.train.seed
    overrides = run_overrides(spec, task, objective, s, seed)
    sets = [x for k, v in overrides.items() if k not in ("task.name", "loss.objective", "train.sync_every", "train.seed")
            for x in ("--set", f"{k}={_cli_value(v)}")]
    train_args = ["-m", "semibench", "train", "--preset", spec.preset, "--task", task, "--objective", objective,
                  "--sync-every", "inf" if s is None else str(s), "--seed", str(seed), "--out", str(out), *sets]
    nproc = max(1, slurm.gpus_per_node)
    if slurm.cluster == "local":  # one process per job on this machine
        launcher = ["python"]
    else:
        launcher = ["torchrun", f"--nproc_per_node={nproc}", "--nnodes=${SLURM_NNODES:-1}", "--rdzv_backend=c10d",
                    "--rdzv_id=${SLURM_JOB_ID:-0}", "--rdzv_endpoint=${MASTER_ADDR:-localhost}:29500"]
    run = RunDir(out, cfg)
    settings_args = " ".join(shlex.quote(a) for a in eval_cli_args(settings))

    def eval_of(checkpoint: str, benches) -> str:  # `checkpoint` is a shell word: quoted, or holding "$c"
        return f"python -m semibench eval {checkpoint} --benchmarks {shlex.quote(','.join(benches))} {settings_args}".rstrip()

    select_by = defaults_for(spec.preset).select_by.get(task)
    if select_by:  # as evaluate_run: score every checkpoint on the validation set, select, score the selected one
        step_of = "import json, sys; print('step_%06d' % json.load(open(sys.argv[1]))['step'])"
        selected = f'"$(python -c {shlex.quote(step_of)} {shlex.quote(str(run.selection_path))})"'
        eval_cmd = (f"for c in {shlex.quote(str(run.checkpoints))}/step_*; do {eval_of(chr(34) + '$c' + chr(34), [select_by])} || exit 1; done"
                    f" && python -m semibench select {shlex.quote(str(run.path))} --by {select_by} --json > /dev/null"
                    f" && {eval_of(shlex.quote(str(run.checkpoints)) + '/' + selected, benchmarks)}")
    else:
        eval_cmd = eval_of(shlex.quote(str(run.checkpoint(cfg.train.steps))), benchmarks)
    head = "MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" 2>/dev/null | head -n1); export MASTER_ADDR=${MASTER_ADDR:-localhost}; "
    train_cmd = " ".join(_quote(a) for a in launcher + train_args)
    return f'{head}{train_cmd} && if [ "${{SLURM_NODEID:-0}}" = 0 ]; then {eval_cmd}; fi'


def _cli_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _quote(arg: str) -> str:
    return arg if "${" in arg else shlex.quote(arg)  # keep the launcher's shell variables expandable


def eval_cli_args(settings) -> list[str]:
    """`semibench eval` flags that reproduce `settings`."""
    from semibench.evals.settings import settings_to_cli

    return settings_to_cli(settings)


def seed_job_command(cfg: RunConfig, out: Path, benchmarks, settings) -> str:
    path = seed_dir(out, cfg.model.name)
    seed_json = json.dumps(seed_record(cfg))
    evaluate = ["python", "-m", "semibench", "eval", cfg.model.name, "--out-dir", str(path / "eval"), "--origin", str(path / "seed.json"),
                "--benchmarks", ",".join(benchmarks), *eval_cli_args(seed_settings(cfg, settings))]
    return f"mkdir -p {shlex.quote(str(path))} && printf %s {shlex.quote(seed_json)} > {shlex.quote(str(path / 'seed.json'))} && " + " ".join(shlex.quote(a) for a in evaluate)


def run_slurm(spec: GridSpec, out: Path, benchmarks, settings, slurm: SlurmSettings, on_job_done: Callable[[int, int], None] = lambda done, total: None) -> list[RunConfig]:
    """One submitit job per base model (seed eval) and per run (train + eval); block until all end.

    Every job is idempotent (training resumes or skips, eval skips finished benchmarks), so all of
    them are submitted each time and re-running a grid after a failure redoes only what is missing.
    Raises naming the failed runs and their logs.
    """
    import submitit
    from submitit.core.utils import FailedJobError, UncompletedJobError

    configs = expand(spec)
    executor = submitit.AutoExecutor(folder=Path(out) / "slurm" / "%j", cluster=slurm.cluster)
    if executor.cluster == "slurm":
        executor.update_parameters(slurm_partition=slurm.partition or None, nodes=slurm.nodes, tasks_per_node=1,
                                   gpus_per_node=slurm.gpus_per_node, cpus_per_task=slurm.cpus_per_task, timeout_min=slurm.time_min)
    else:
        executor.update_parameters(timeout_min=slurm.time_min)
    commands = [(f"seed-{m}", seed_job_command(next(c for c in configs if c.model.name == m), out, benchmarks, settings))
                for m in dict.fromkeys(c.model.name for c in configs)]
    commands += [(run_id(cfg), job_command(spec, cfg, out, benchmarks, settings, slurm)) for cfg in configs]
    jobs = [(name, executor.submit(submitit.helpers.CommandFunction(["bash", "-c", command]))) for name, command in commands]
    failed = []
    for done, (name, job) in enumerate(jobs, 1):
        try:
            job.result()
        except (FailedJobError, UncompletedJobError) as exc:  # a job failed or died: collect them all, then report
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            failed.append(f"{name} (job {job.job_id}: {last})")
        on_job_done(done, len(jobs))
    if failed:
        raise RuntimeError(f"{len(failed)} grid job(s) failed: " + "; ".join(failed) + f"; logs in {Path(out) / 'slurm'}")
    return configs
