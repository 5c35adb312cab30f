"""Every run's metrics in the experiment trackers people already watch: TensorBoard, MLflow, W&B, trackio.

`log.report_to` (`--report-to` on `semibench train` and `semibench grid`) names them; the default is none.
metrics.jsonl stays the record: a tracker gets the same row, at the same optimizer step, after it is
written. One adapter per library behind `Tracker`; `Trackers` fans out to them and catches each one's
failures: a tracker that raises (a full disk, an unreachable server) warns once, is switched off for the
rest of the run, and training goes on. A missing package is refused before anything trains
(`check_installed`, one line naming the extra).

Offline by default, no account: TensorBoard writes `runs/<id>/tensorboard/`; MLflow a local file store
`<runs root>/mlruns` unless MLFLOW_TRACKING_URI is set; W&B offline runs under `runs/<id>/wandb/` unless
WANDB_MODE says otherwise (`wandb sync` uploads them later); trackio its local store (TRACKIO_DIR, else
the Hugging Face cache). A resumed run appends to the same tracker run: TensorBoard purges the steps after
the resumed state (the same directory, no duplicated steps); MLflow reopens the run it recorded in
`runs/<id>/trackers.json`; W&B resumes the run id (`resume="allow"`); trackio resumes the run by name.
MLflow, W&B and trackio cannot drop points: a reopened tracker run is asked which steps it holds, and gets
only the others (steps logged between the last resumable state and a kill are bit-identical but for
timings, so they are kept; rows it lost in the kill are logged again from metrics.jsonl). A tracker added
to a run later gets the run's earlier rows from metrics.jsonl too.

Evaluation results (`log_evaluations`, called by the grid) go to the same tracker runs as `eval/<bench>`
and `eval/<bench>_se_items` at the checkpoint's step (the seed model's at step 0). Rank 0 only.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from semibench.config import ConfigError, RunConfig, flatten, regime_label
from semibench.runs import atomic_write_json, read_metrics, run_id

NAMES = ("tensorboard", "mlflow", "wandb", "trackio")
# name -> (module to import, the pip requirement the `trackers` extra pins)
PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny"), "wandb": ("wandb", "wandb"),
            "trackio": ("trackio", "trackio")}
INSTALL = 'pip install -e ".[trackers]"'
STATE_FILE = "trackers.json"  # in the run directory: the MLflow run id and which evaluations each tracker holds


def requested(cfg: RunConfig) -> tuple[str, ...]:
    """The trackers a config reports to, in order, without duplicates ("none" alone means none; "all" means all four)."""
    names: list[str] = []
    for name in cfg.log.report_to:
        names += NAMES if name == "all" else [] if name == "none" else [name]
    return tuple(dict.fromkeys(names))


def check_installed(names: tuple[str, ...]) -> None:
    """Refuse, with one line, a tracker whose package does not import (before anything is trained)."""
    for name in names:
        module, requirement = PACKAGES[name]
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(f"--report-to {name} needs the {requirement} package, which is not installed: {INSTALL} "
                              f"(or pip install {requirement})") from None


def tags(cfg: RunConfig) -> dict[str, str]:
    """What a run is, as tracker tags: task, objective, s, regime, seed (and the preset and model)."""
    s = "inf" if cfg.train.sync_every is None else str(cfg.train.sync_every)
    return {"task": cfg.task.name, "objective": cfg.loss.objective, "s": s, "regime": regime_label(cfg.train.sync_every),
            "seed": str(cfg.train.seed), "preset": cfg.preset, "model": cfg.model.name}


def hyperparameters(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as flat hyperparameters (dotted keys; tuples and None as text)."""
    return {k: v if isinstance(v, (bool, int, float, str)) else ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
            for k, v in flatten(cfg).items()}


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The numeric series of a metrics row (the step is the x axis, not a series)."""
    return {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))}


def eval_series(results: dict[str, dict]) -> dict[str, float]:
    """{result key: result} of one checkpoint -> eval/<bench> (its score) and eval/<bench>_se_items."""
    out = {}
    for key, result in sorted(results.items()):
        name = "eval/" + re.sub(r"[^A-Za-z0-9_\-./]", "_", key)
        if isinstance(result.get("score"), (int, float)):
            out[name] = float(result["score"])
        if isinstance(result.get("se_items"), (int, float)):
            out[f"{name}_se_items"] = float(result["se_items"])
    return out


class Tracker(Protocol):
    """One library's run. `log` gets a training row at its optimizer step and skips a step its run already
    holds; `log_eval` gets evaluation series at a checkpoint's step."""

    name: str

    def log(self, values: dict[str, float], step: int) -> None: ...

    def log_eval(self, values: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Opening:
    """How a tracker run is (re)opened: `start` is the first step the caller will log; `resuming`: a training
    loop resumes at `start` (TensorBoard purges what the killed process logged from there on)."""

    start: int
    resuming: bool
    state: dict  # runs/<id>/trackers.json, shared by the adapters (each writes its own key)


class TensorBoard:
    """runs/<id>/tensorboard/: one event file per process. A resume writes a purge at its first step, so
    TensorBoard's reader drops the steps the killed process logged after the resumed state; rows before it
    are there already (flushed every step), unless the directory is new (then they are logged again)."""

    name = "tensorboard"

    def __init__(self, cfg: RunConfig, run_path: Path, opening: Opening):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        logdir = run_path / "tensorboard"
        fresh = not logdir.exists()
        purge = opening.start if opening.resuming and opening.start and not fresh else None
        self.writer = SummaryWriter(str(logdir), purge_step=purge, flush_secs=30)
        self.floor = 0 if fresh else opening.start  # steps below it are in the directory
        if fresh:
            writer = self.writer._get_file_writer()
            for summary in hparams(hyperparameters(cfg), {}):
                writer.add_summary(summary)
            self.writer.add_text("config", "```\n" + json.dumps(hyperparameters(cfg), indent=1) + "\n```", 0)
            self.writer.add_text("tags", ", ".join(f"{k}: {v}" for k, v in tags(cfg).items()), 0)

    def log(self, values: dict[str, float], step: int) -> None:
        if step >= self.floor:
            self.log_eval(values, step)

    def log_eval(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # a kill loses no step before the resumed state

    def close(self) -> None:
        self.writer.close()


class MLflow:
    """MLFLOW_TRACKING_URI, else a local file store `<runs root>/mlruns`; experiment = log.group, else log.project.
    One MLflow run per semibench run: its id is kept in runs/<id>/trackers.json (and found by the tag
    `semibench.run_id` when that file is gone), so a resume and the grid's evaluations reopen it."""

    name = "mlflow"

    def __init__(self, cfg: RunConfig, run_path: Path, opening: Opening):
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_path.parent / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):  # MLflow 3 keeps the file store behind an opt-in; it is the offline default here
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.entities import Param, RunStatus
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        self.finished = RunStatus.to_string(RunStatus.FINISHED)
        known = opening.state.get("mlflow", {})
        self.run_id = known.get("run_id") if known.get("tracking_uri") == uri else None
        experiment = cfg.log.group or cfg.log.project
        if self.run_id is None:  # trackers.json is gone (a fresh restart clears the directory): find the run by its tag
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            same = self.client.search_runs([experiment_id], filter_string=f"tags.`semibench.run_id` = '{run_path.name}'", max_results=1)
            self.run_id = same[0].info.run_id if same else None
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            self.logged = {m.step for m in self.client.get_metric_history(self.run_id, "lr")}  # steps it already holds
        else:
            run = self.client.create_run(experiment_id, run_name=run_path.name,
                                         tags={**tags(cfg), "semibench.run_id": run_path.name, "semibench.group": cfg.log.group})
            self.run_id = run.info.run_id
            params = [Param(k, str(v)[:6000]) for k, v in hyperparameters(cfg).items()]
            for i in range(0, len(params), 100):
                self.client.log_batch(self.run_id, params=params[i : i + 100])
            self.logged = set()
        opening.state["mlflow"] = {"run_id": self.run_id, "tracking_uri": uri}

    def log(self, values: dict[str, float], step: int) -> None:
        if step not in self.logged:
            self.log_eval(values, step)
            self.logged.add(step)

    def log_eval(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(mlflow_name(k), v, now, step) for k, v in values.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id, self.finished)


class WandB:
    """Offline unless WANDB_MODE says otherwise: runs/<id>/wandb/offline-run-*; id = name = the run id, group = log.group,
    resume="allow". W&B steps only go up and cannot be dropped, so a reopened run first reads what its earlier
    offline segments hold (W&B's own reader, `wandb leet inspect`; online: the resumed run's step) and logs only
    later steps. A SIGKILL that takes W&B's service with it can lose the records it had not written yet: those
    steps are then logged again from metrics.jsonl. Evaluation rows follow the training rows and carry their
    checkpoint step as `eval/step`, the x axis of the eval/* charts."""

    name = "wandb"

    def __init__(self, cfg: RunConfig, run_path: Path, opening: Opening):
        import wandb

        mode = os.environ.get("WANDB_MODE") or "offline"
        held = wandb_steps(run_path)  # before init, which starts a new segment
        self.run = wandb.init(project=cfg.log.project, id=wandb_id(run_path.name), name=run_path.name, group=cfg.log.group or None,
                              dir=str(run_path), config=hyperparameters(cfg), tags=[f"{k}:{v}" for k, v in tags(cfg).items()],
                              resume="allow", mode=mode, reinit="create_new", settings=wandb.Settings(silent=True))
        self.run.define_metric("eval/step")
        self.run.define_metric("eval/*", step_metric="eval/step")
        self.last = max(held, (getattr(self.run, "step", 0) or 0) - 1)

    def log(self, values: dict[str, float], step: int) -> None:
        if step > self.last:
            self.run.log(values, step=step)
            self.last = step

    def log_eval(self, values: dict[str, float], step: int) -> None:
        self.last += 1
        self.run.log({"eval/step": step, **values}, step=self.last)

    def close(self) -> None:
        self.run.finish()


def wandb_records(segment: Path) -> list[dict]:
    """The records of one W&B run directory (`offline-run-*`), through W&B's own reader of its transaction log."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(segment)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WANDB_SILENT": "true"})
    if done.returncode != 0:
        raise RuntimeError(f"wandb leet inspect {segment} failed: {done.stderr.strip()[-500:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def wandb_steps(run_path: Path) -> int:
    """The last step the run's offline segments hold (-1: none)."""
    last = -1
    for segment in sorted((run_path / "wandb").glob("offline-run-*")):
        for record in wandb_records(segment):
            if record.get("type") == "history":
                last = max(last, int(record["history"].get("step", {}).get("num", 0)))
    return last


class Trackio:
    """trackio's local store (TRACKIO_DIR, else the Hugging Face cache); project = log.project, group = log.group,
    run name = the run id, resume="allow"."""

    name = "trackio"

    def __init__(self, cfg: RunConfig, run_path: Path, opening: Opening):
        import trackio
        from trackio.sqlite_storage import SQLiteStorage

        with contextlib.redirect_stdout(io.StringIO()):  # its banner would break the progress view
            self.run = trackio.init(project=cfg.log.project, name=run_path.name, group=cfg.log.group or None,
                                    config=hyperparameters(cfg) | tags(cfg), resume="allow", embed=False, auto_log_cpu=False, auto_log_gpu=False)
        self.logged = {row["step"] for row in SQLiteStorage.get_logs(cfg.log.project, run_path.name) if "lr" in row}

    def log(self, values: dict[str, float], step: int) -> None:
        if step not in self.logged:
            self.run.log(values, step=step)
            self.logged.add(step)

    def log_eval(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        from trackio import context_vars

        with contextlib.redirect_stdout(io.StringIO()):
            self.run.finish()
        if context_vars.current_run.get() is self.run:  # else trackio's atexit hook finishes it again, printing
            context_vars.current_run.set(None)


ADAPTERS = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB, "trackio": Trackio}


# MLflow's file store keeps a series as a file under its name, so `reward` cannot sit beside `reward/math`:
# in MLflow (any store, for one naming) a series that is also the folder of others gets `/all`.
MLFLOW_PARENTS = ("reward", "frac_valid_prompts")


def mlflow_name(key: str) -> str:
    return f"{key}/all" if key in MLFLOW_PARENTS else key


def wandb_id(name: str) -> str:
    """A W&B run id from a semibench run id (W&B allows letters, digits, - and _; at most 64 characters)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[-64:]


class Trackers:
    """The fan-out: every call goes to each live tracker; one that raises warns once and is switched off."""

    def __init__(self, cfg: RunConfig, run_path: Path, start_step: int, resuming: bool, warn=None):
        """Open (or reopen) the run's tracker runs and hand each the rows of metrics.jsonl it does not hold yet: a
        tracker added on resume, or to a finished run the grid evaluates, gets the whole run."""
        self.run_path = Path(run_path)
        self.warn = warn or (lambda line: print(f"warning: {line}", file=sys.stderr, flush=True))
        self.state_path = self.run_path / STATE_FILE
        self.state = _read_json(self.state_path)
        self.live: list[Tracker] = []
        opening = Opening(start_step, resuming, self.state)
        for name in requested(cfg):
            try:
                self.live.append(ADAPTERS[name](cfg, self.run_path, opening))
            except Exception as exc:  # noqa: BLE001: an unreachable server or a bad URI must not stop training
                self.warn(f"tracker {name} did not start ({type(exc).__name__}: {exc}); the run goes on without it, metrics.jsonl is complete")
        for row in read_metrics(self.run_path / "metrics.jsonl") if self.live else []:
            if row["step"] < start_step:
                self.log(row)
        self._save()

    def _safe(self, tracker: Tracker, method: str, *args) -> bool:
        """One call; on any exception the tracker is switched off with one warning. Returns whether it succeeded."""
        try:
            getattr(tracker, method)(*args)
            return True
        except Exception as exc:  # noqa: BLE001: a full disk or a lost server warns once, never stops training
            self.live.remove(tracker)
            self.warn(f"tracker {tracker.name} failed ({type(exc).__name__}: {exc}); it is off for the rest of this run, "
                      "metrics.jsonl is complete")
            if method != "close":
                try:
                    tracker.close()
                except Exception:  # noqa: BLE001
                    pass
            return False

    def log(self, row: dict[str, Any]) -> None:
        """One metrics.jsonl row, at its optimizer step."""
        values, step = scalars(row), int(row["step"])
        for tracker in list(self.live):
            self._safe(tracker, "log", values, step)

    def log_evaluations(self, points: dict[int, dict[str, dict]]) -> int:
        """{checkpoint step: {result key: result}} -> eval/* series, each (tracker, step, result) once ever. Returns the rows logged."""
        done = self.state.setdefault("evals", {})
        logged = 0
        for step in sorted(points):
            for tracker in list(self.live):
                seen = done.setdefault(tracker.name, [])
                fresh = {k: r for k, r in points[step].items() if _eval_key(step, k, r) not in seen}
                values = eval_series(fresh)
                if values and self._safe(tracker, "log_eval", values, step):
                    seen += [_eval_key(step, k, r) for k, r in fresh.items()]
                    logged += 1
        self._save()
        return logged

    def close(self) -> None:
        for tracker in list(self.live):
            self._safe(tracker, "close")
        self.live = []
        self._save()

    def _save(self) -> None:
        if self.state:
            try:
                atomic_write_json(self.state_path, self.state)
            except OSError:
                pass  # a full disk: the trackers warn for themselves; metrics.jsonl is what counts


def open_trackers(cfg: RunConfig, run_path: Path, start_step: int = 0) -> Trackers | None:
    """A training loop's trackers, from `start_step` on (None when it reports to none). Call once the run
    directory is set up (resumed or started fresh)."""
    return Trackers(cfg, run_path, start_step, resuming=True) if requested(cfg) else None


def log_evaluations(cfg: RunConfig, out: Path, points: dict[int, dict[str, dict]]) -> int:
    """The grid's evaluation results of one run, into the run's tracker runs (reopened by run id)."""
    if not requested(cfg) or not points:
        return 0
    run_path = Path(out) / run_id(cfg)
    rows = read_metrics(run_path / "metrics.jsonl")
    trackers = Trackers(cfg, run_path, start_step=rows[-1]["step"] + 1 if rows else 0, resuming=False)
    try:
        return trackers.log_evaluations(points)
    finally:
        trackers.close()


def _eval_key(step: int, key: str, result: dict) -> str:
    return f"{step}:{key}:{result.get('date', '')}"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
