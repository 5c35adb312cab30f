"""--report-to: every metrics.jsonl row, step for step, in TensorBoard, MLflow, W&B and trackio, read back
through each library's own reader (EventAccumulator, MlflowClient.get_metric_history, `wandb leet inspect`
on the offline run directory, trackio's SQLiteStorage), never mocked. Offline, no account.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from semibench import config, trackers
from semibench.trackers import adapters, records
from semibench.runs import RunDir, run_id

# trackio reads TRACKIO_DIR once, when imported: one store for this module, in a temporary directory.
TRACKIO_DIR = os.environ.setdefault("TRACKIO_DIR", tempfile.mkdtemp(prefix="semibench-trackio-"))
for package in ("tensorboard", "mlflow", "sqlalchemy", "alembic", "wandb", "trackio"):  # the `trackers` extra
    pytest.importorskip(package)
ALL = "tensorboard,mlflow,wandb,trackio"
TIMING = ("time/", "tokens_per_s")


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}  # the defaults: offline, local
    env |= {"TRACKIO_DIR": TRACKIO_DIR, "WANDB_CONFIG_DIR": str(tmp / "wandb-config"), "WANDB_CACHE_DIR": str(tmp / "wandb-cache"),
            "WANDB_DATA_DIR": str(tmp / "wandb-data"), "HF_HUB_OFFLINE": "1"}
    return env


def _train_command(out: Path, *extra: str, steps: int = 4) -> list[str]:
    return [sys.executable, "-m", "semibench", "train", "--preset", "tiny", "--task", "mixed", "--objective", "dpo", "--steps", str(steps),
            "--out", str(out), *extra]


def _run(cmd: list[str], tmp: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=_env(tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


# --- each library's own reader: {series: [(step, value), ...]} ------------------------------------------


def tensorboard_series(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def mlflow_series(run: Path) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    state = json.loads((run / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=state["tracking_uri"])
    keys = client.get_run(state["run_id"]).data.metrics
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(state["run_id"], k)) for k in keys}


def wandb_records(run: Path) -> list[dict]:
    """Every record of every offline segment of the run, in order, through `wandb leet inspect --json`."""
    records = []
    for segment in sorted((run / "wandb").glob("offline-run-*")):
        out = subprocess.run([str(Path(sys.executable).with_name("wandb")), "leet", "inspect", "--json", str(segment)],
                             capture_output=True, text=True, timeout=120, env=_env(run.parent))
        assert out.returncode == 0, out.stderr
        records += [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return records


def wandb_series(run: Path) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list] = {}
    for record in wandb_records(run):
        if record["type"] == "history":
            step = int(record["history"]["step"].get("num", 0))
            for key, value in record["history"]["item"].items():
                if not key.startswith("_"):
                    series.setdefault(key, []).append((step, value))
    return series


def trackio_series(run: Path) -> dict[str, list[tuple[int, float]]]:
    from trackio.sqlite_storage import SQLiteStorage

    series: dict[str, list] = {}
    for row in SQLiteStorage.get_logs("semibench", run.name):
        for key, value in row.items():
            if key not in ("step", "timestamp"):
                series.setdefault(key, []).append((row["step"], value))
    return series


READERS = {"tensorboard": tensorboard_series, "mlflow": mlflow_series, "wandb": wandb_series, "trackio": trackio_series}


def expected(run: Path, tracker: str, skip=TIMING) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as series, named as the tracker names them (TensorBoard keeps float32)."""
    out: dict[str, list] = {}
    for row in RunDir.at(run).read_metrics():
        for key, value in records.scalars(row).items():
            if key.startswith(skip):
                continue
            name = records.mlflow_name(key) if tracker == "mlflow" else key
            out.setdefault(name, []).append((row["step"], float(np.float32(value)) if tracker == "tensorboard" else value))
    return out


def training_series(series: dict, skip=TIMING) -> dict:
    return {k: v for k, v in series.items() if not k.startswith(("eval/",) + skip)}


def assert_equal_to_metrics(run: Path, skip=TIMING) -> dict[str, tuple[int, int]]:
    """Every tracker holds every metrics.jsonl series with the same value at every step, once. Returns (series, points)."""
    counts = {}
    for name, read in READERS.items():
        got, want = training_series(read(run), skip), expected(run, name, skip)
        assert sorted(got) == sorted(want), f"{name}: series differ: {set(got) ^ set(want)}"
        for key in want:
            assert sorted(got[key]) == want[key], f"{name}: {key} differs from metrics.jsonl"
        counts[name] = (len(want), sum(len(v) for v in want.values()))
    return counts


# --- tests -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """One tiny mixed DPO run reported to all four trackers."""
    tmp = tmp_path_factory.mktemp("reported")
    _run(_train_command(tmp / "runs", "--report-to", ALL), tmp)
    [run] = [p for p in (tmp / "runs").iterdir() if p.is_dir()]  # MLflow's store is a file beside the runs: mlflow.db
    return run


def test_every_tracker_holds_metrics_jsonl_step_for_step(reported):
    counts = assert_equal_to_metrics(reported, skip=())  # timings too: the same row went everywhere
    rows = RunDir.at(reported).read_metrics()
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert {"reward/math", "reward/if", "dpo_loss", "kl", "logit_entropy", "staleness", "mismatch_kl_engine", "is_ess", "time/train",
            "tokens_per_s"} <= set(rows[0])
    for name, (series, points) in counts.items():
        assert series >= 30 and points == sum(len(records.scalars(r)) for r in rows), (name, series, points)
    print("read back (series, points):", counts)


def test_hyperparameters_tags_and_names(reported):
    cfg = RunDir.at(reported).read_config()
    [run_record] = [r["run"] for r in wandb_records(reported) if r["type"] == "run"]
    assert run_record["run_id"] == reported.name and run_record["display_name"] == reported.name
    assert {"task:mixed", "objective:dpo", "s:1", "regime:online", "seed:0"} <= set(run_record["tags"])
    assert run_record["config"]["update"]["optim.lr"] == cfg.optim.lr
    from mlflow.tracking import MlflowClient

    state = json.loads((reported / "trackers.json").read_text())["mlflow"]
    data = MlflowClient(tracking_uri=state["tracking_uri"]).get_run(state["run_id"]).data
    assert data.params["loss.objective"] == "dpo" and data.tags["regime"] == "online" and data.tags["semibench.run_id"] == reported.name
    assert data.tags["mlflow.runName"] == reported.name
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(reported / "tensorboard"))
    acc.Reload()
    assert "_hparams_/experiment" in acc.summary_metadata and any("config" in t for t in acc.Tags()["tensors"])


def test_evaluations_become_eval_series_once(reported):
    """The grid's evaluation results (the seed model's at step 0) go to every tracker as eval/<bench> and _se_items."""
    from semibench import grid

    out, cfg = reported.parent, RunDir.at(reported).read_config()
    results = {0: (grid.seed_dir(out, cfg.model.name) / "eval", 3.75, 1.51), 4: (RunDir.at(reported).eval_dir(4), 11.88, 2.57)}
    for step, (where, score, se) in results.items():
        where.mkdir(parents=True, exist_ok=True)
        record = {"benchmark": "math_heldout", "score": score, "se_items": se, "date": "2026-01-01T00:00:00+00:00"}
        (where / "math_heldout.json").write_text(json.dumps(record))
    assert grid.report_evaluations(cfg, out) == 8  # 2 checkpoints x 4 trackers
    assert grid.report_evaluations(cfg, out) == 0  # a re-run of the grid logs nothing twice
    want = {"eval/math_heldout": [(0, 3.75), (4, 11.88)], "eval/math_heldout_se_items": [(0, 1.51), (4, 2.57)]}
    for name, read in READERS.items():
        series = read(reported)
        if name == "wandb":  # W&B steps only go up: eval rows carry their checkpoint step as eval/step
            rows = [r["history"]["item"] for r in wandb_records(reported) if r["type"] == "history" and "eval/step" in r["history"]["item"]]
            got = {k: [(int(r["eval/step"]), r[k]) for r in rows] for k in want}
        else:
            got = {k: sorted(series[k]) for k in want}
        if name == "tensorboard":
            want_here = {k: [(s, float(np.float32(v))) for s, v in pts] for k, pts in want.items()}
        else:
            want_here = want
        assert got == want_here, name
    assert_equal_to_metrics(reported)  # the training series are untouched


def test_kill_then_resume_appends_to_the_same_tracker_runs(tmp_path):
    """SIGKILL mid-run, run the same command again: one tracker run each, every step once, equal to metrics.jsonl."""
    out = tmp_path / "runs"
    cmd = _train_command(out, "--report-to", ALL, "--set", "train.resume_every=2", steps=7)
    proc = subprocess.Popen(cmd, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        rows = list(out.glob("*/metrics.jsonl"))
        if rows and len(rows[0].read_text().splitlines()) >= 4:  # a state at step 2, and step 3 logged after it
            break
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run = rows[0].parent
    killed_at = len(RunDir.at(run).read_metrics())
    assert not (run / "DONE").exists() and (run / "state").is_dir()
    _run(cmd, tmp_path)
    assert (run / "DONE").exists() and [r["step"] for r in RunDir.at(run).read_metrics()] == list(range(7))
    # Steps re-run after the resumed state are bit-identical but for timings; TensorBoard purges and holds the re-run's timings too.
    counts = assert_equal_to_metrics(run)
    assert training_series(tensorboard_series(run), ()) == expected(run, "tensorboard", ())
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2  # the same directory, one file per process
    # W&B: two offline segments of one run id (the killed one may hold only what its service wrote before the kill).
    assert len([p for p in (run / "wandb").glob(f"offline-run-*-{run.name}")]) == 2
    segments = [r["run"] for r in wandb_records(run) if r["type"] == "run"]
    assert segments and {s["run_id"] for s in segments} == {run.name} and all(s.get("resume") for s in segments)
    from mlflow.tracking import MlflowClient

    state = json.loads((run / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=state["tracking_uri"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert len(client.search_runs(experiments, filter_string=f"tags.`semibench.run_id` = '{run.name}'")) == 1  # the same MLflow run
    print(f"killed after {killed_at} rows, resumed; read back (series, points):", counts)


def test_a_missing_tracker_package_is_one_line_and_nothing_trains(tmp_path):
    code = ("import sys; sys.modules['wandb'] = None; from semibench.cli import main; "
            f"sys.argv = ['semibench', *{_train_command(tmp_path / 'runs', '--report-to', 'tensorboard,wandb')[3:]!r}]; main()")
    done = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "wandb" in lines[0] and 'pip install -e ".[trackers]"' in lines[0], done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_tracker_failing_mid_run_warns_once_and_training_goes_on(tmp_path, monkeypatch, capsys):
    from semibench.training.train import train

    calls = []

    def full_disk(self, values, step):
        calls.append(step)
        if step >= 1:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(adapters.TensorBoard, "log", full_disk)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")  # an explicit URI wins over the default
    cfg = config.resolve("tiny", {"task.name": "math", "train.steps": 4, "log.report_to": "tensorboard,mlflow"})
    run = train(cfg, tmp_path / "runs")
    assert (run / "DONE").exists() and len(RunDir.at(run).read_metrics()) == 4
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: tracker")]
    assert len(warnings) == 1 and "tensorboard" in warnings[0] and "No space left" in warnings[0], warnings
    assert calls == [0, 1]  # switched off after its failure
    got, want = training_series(mlflow_series(run)), expected(run, "mlflow")
    assert {k: sorted(v) for k, v in got.items()} == want  # the other tracker has everything


def test_an_unreachable_tracker_server_does_not_stop_the_run(tmp_path, monkeypatch, capsys):
    from semibench.training.train import train

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens: the server is gone
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cfg = config.resolve("tiny", {"task.name": "math", "train.steps": 2, "log.report_to": "mlflow"})
    run = train(cfg, tmp_path / "runs")
    assert (run / "DONE").exists() and len(RunDir.at(run).read_metrics()) == 2
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: tracker mlflow")]
    assert len(warnings) == 1


def test_report_to_config_key():
    cfg = config.resolve("tiny", {"log.report_to": "wandb,mlflow"})
    assert cfg.log.report_to == ("wandb", "mlflow") and trackers.requested(cfg) == ("wandb", "mlflow")
    assert trackers.requested(config.resolve("tiny", {"log.report_to": "none"})) == ()
    assert trackers.requested(config.resolve("tiny", {"log.report_to": "all"})) == trackers.NAMES
    assert trackers.requested(config.resolve("tiny", {})) == ()  # the default stays none
    with pytest.raises(config.ConfigError, match="log.report_to"):
        config.resolve("tiny", {"log.report_to": "tensorbord"})
    # Where metrics go changes no numerics: the same run directory with or without trackers.
    assert run_id(config.resolve("tiny", {"log.report_to": ALL, "log.group": "g"})) == run_id(config.resolve("tiny", {}))


def test_grid_groups_its_runs_and_keeps_their_ids():
    from semibench import grid

    spec = grid.GridSpec(tasks=("math",), objectives=("dpo",), sync_every=(1, None), preset="tiny", overrides={"log.report_to": "wandb"})
    plain = grid.expand(grid.GridSpec(tasks=("math",), objectives=("dpo",), sync_every=(1, None), preset="tiny"))
    configs = grid.expand(spec)
    assert {c.log.group for c in configs} == {"grid-tiny-math"}
    assert [run_id(c) for c in configs] == [run_id(c) for c in plain]


def test_mlflow_fills_a_step_a_kill_left_half_written_and_duplicates_nothing(tmp_path, monkeypatch):
    """A SIGKILL inside log_batch leaves a step with some series written: the resumed run must log the
    rest of that step, and nothing twice (the kill-and-resume test above hit this by timing, now and then)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = config.resolve("tiny", {"log.report_to": "mlflow"})
    run_path = tmp_path / "runs" / "a-run"
    run_path.mkdir(parents=True)
    state: dict = {}
    first = adapters.MLflow(cfg, run_path, adapters.Opening(0, False, state))
    first.log({"lr": 1e-5, "reward": 0.25, "dpo_loss": 0.69}, step=0)
    first.log_eval({"lr": 1e-5}, step=1)  # step 1 killed after its first series
    resumed = adapters.MLflow(cfg, run_path, adapters.Opening(1, True, state))
    assert resumed.run_id == first.run_id
    for step, row in ((0, {"lr": 1e-5, "reward": 0.25, "dpo_loss": 0.69}), (1, {"lr": 1e-5, "reward": 0.5, "dpo_loss": 0.6})):
        resumed.log(row, step)
    history = {key: sorted((m.step, m.value) for m in resumed.client.get_metric_history(first.run_id, records.mlflow_name(key)))
               for key in ("lr", "reward", "dpo_loss")}
    assert history == {"lr": [(0, 1e-5), (1, 1e-5)], "reward": [(0, 0.25), (1, 0.5)], "dpo_loss": [(0, 0.69), (1, 0.6)]}


def test_mlflow_default_is_a_sqlite_store_mlflow_opens_with_no_opt_in(tmp_path, monkeypatch):
    """The local default is MLflow's recommended backend: `<runs root>/mlflow.db`, which MLflow's own reader (what
    `mlflow ui --backend-store-uri sqlite:///runs/mlflow.db` serves) opens without MLFLOW_ALLOW_FILE_STORE."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(name, raising=False)
    cfg = config.resolve("tiny", {"log.report_to": "mlflow"})
    run_path = tmp_path / "runs" / "a-run"
    run_path.mkdir(parents=True)
    state: dict = {}
    tracker = adapters.MLflow(cfg, run_path, adapters.Opening(0, False, state))
    tracker.log({"lr": 1e-5, "reward": 0.25}, step=0)
    tracker.close()
    assert state["mlflow"]["tracking_uri"] == f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["a-run", "mlflow.db"]  # no mlruns/, nothing in the cwd
    read = ("import sys; from mlflow.tracking import MlflowClient; c = MlflowClient(tracking_uri=sys.argv[1]); "
            "print([(m.step, m.value) for m in c.get_metric_history(sys.argv[2], 'reward/all')])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run([sys.executable, "-c", read, state["mlflow"]["tracking_uri"], tracker.run_id], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "[(0, 0.25)]", done.stderr[-2000:]


def test_a_run_logged_to_the_old_file_store_resumes_into_the_sqlite_store(tmp_path, monkeypatch):
    """A run an earlier version reported to `runs/mlruns` (trackers.json names that store): resumed now, without
    MLFLOW_TRACKING_URI, it gets one MLflow run in runs/mlflow.db holding every metrics.jsonl row once."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = config.resolve("tiny", {"log.report_to": "mlflow"})
    run = RunDir(tmp_path / "runs", cfg)
    run.start_fresh(cfg)
    for step in range(3):
        run.append_metrics({"step": step, "lr": 1e-5, "reward": 0.1 * step})
    (run.path / "trackers.json").write_text(json.dumps({"mlflow": {"run_id": "0123abcd", "tracking_uri": (tmp_path / "runs" / "mlruns").as_uri()}}))
    resumed = trackers.open_trackers(cfg, run.path, start_step=3)
    resumed.close()
    state = json.loads((run.path / "trackers.json").read_text())["mlflow"]
    assert state["tracking_uri"].startswith("sqlite:///") and state["run_id"] != "0123abcd"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=state["tracking_uri"])
    assert sorted((m.step, m.value) for m in client.get_metric_history(state["run_id"], "reward/all")) == [(0, 0.0), (1, 0.1), (2, 0.2)]
