"""One adapter per tracking library behind `Tracker`: open or reopen its run for a semibench run, log a
training row or a checkpoint's evaluation at a step, close. Each library is imported only when asked for."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from semibench.config import RunConfig
from semibench.trackers.records import hyperparameters, mlflow_name, tags, wandb_id


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
    """MLFLOW_TRACKING_URI, else MLflow's recommended local backend, SQLite: `<runs root>/mlflow.db` (MLflow 3 keeps
    its file store in maintenance mode, behind MLFLOW_ALLOW_FILE_STORE); experiment = log.group, else log.project.
    One MLflow run per semibench run: its id is kept in runs/<id>/trackers.json (and found by the tag
    `semibench.run_id` when that file is gone), so a resume and the grid's evaluations reopen it. A run whose
    trackers.json names another store (a file store of an earlier version) continues in this one, from step 0."""

    name = "mlflow"

    def __init__(self, cfg: RunConfig, run_path: Path, opening: Opening):
        uri = os.environ.get("MLFLOW_TRACKING_URI") or local_store(run_path.parent)
        quiet_store_setup()
        from mlflow.entities import Param, RunStatus
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        self.finished = RunStatus.to_string(RunStatus.FINISHED)
        known = opening.state.get("mlflow", {})
        self.run_id = known.get("run_id") if known.get("tracking_uri") == uri else None
        experiment = cfg.log.group or cfg.log.project
        if self.run_id is None:  # trackers.json is gone (a fresh restart clears the directory): find the run by its tag
            found = self.client.get_experiment_by_name(experiment)
            # Artifacts (none logged today) beside the store, never under the current directory (MLflow's default).
            experiment_id = found.experiment_id if found else self.client.create_experiment(
                experiment, artifact_location=(run_path.parent / "mlartifacts").resolve().as_uri())
            same = self.client.search_runs([experiment_id], filter_string=f"tags.`semibench.run_id` = '{run_path.name}'", max_results=1)
            self.run_id = same[0].info.run_id if same else None
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            # The (series, step) points it already holds, series by series: a kill inside log_batch leaves
            # a step with some series written and others not, and only the missing ones may be logged again.
            self.held = {key: {m.step for m in self.client.get_metric_history(self.run_id, key)}
                         for key in self.client.get_run(self.run_id).data.metrics}
        else:
            run = self.client.create_run(experiment_id, run_name=run_path.name,
                                         tags={**tags(cfg), "semibench.run_id": run_path.name, "semibench.group": cfg.log.group})
            self.run_id = run.info.run_id
            params = [Param(k, str(v)[:6000]) for k, v in hyperparameters(cfg).items()]
            for i in range(0, len(params), 100):
                self.client.log_batch(self.run_id, params=params[i : i + 100])
            self.held = {}
        opening.state["mlflow"] = {"run_id": self.run_id, "tracking_uri": uri}

    def log(self, values: dict[str, float], step: int) -> None:
        missing = {k: v for k, v in values.items() if step not in self.held.get(mlflow_name(k), ())}
        if missing:
            self.log_eval(missing, step)
            for k in missing:
                self.held.setdefault(mlflow_name(k), set()).add(step)

    def log_eval(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(mlflow_name(k), v, now, step) for k, v in values.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id, self.finished)


def local_store(runs_root: Path) -> str:
    """The default MLflow tracking URI: a SQLite database in the runs root, as `mlflow ui --backend-store-uri` takes it."""
    return f"sqlite:///{(Path(runs_root) / 'mlflow.db').resolve()}"


def quiet_store_setup() -> None:
    """A new SQLite store logs its schema migrations at INFO (MLflow's and Alembic's loggers); they would cut into
    the progress view, and say nothing a user acts on."""
    import logging

    for name in ("mlflow.store.db.utils", "mlflow.store.tracking.sqlalchemy_store", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


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
