"""The run-directory contract: paths, run id, atomic writes, DONE markers.

runs/<run_id>/config.json        resolved config (no secrets); the run id hashes it
runs/<run_id>/config.yaml        the same, as a file `semibench train --config` re-runs (configfile.dump)
runs/<run_id>/metrics.jsonl      one JSON object per step
runs/<run_id>/checkpoints/step_N/ HF safetensors + tokenizer + DONE
runs/<run_id>/state/step_N/      resumable training state (newest only) + DONE
runs/<run_id>/eval/step_N/       evaluation results of checkpoint N (semibench eval)
runs/<run_id>/selected.json      the checkpoint picked by a validation score (semibench select; the paper's protocol)
runs/<run_id>/summary.json       steps, updates, reward, seconds and the code's git commit, written at the end
runs/<run_id>/DONE               the run finished
A directory is done only when its DONE marker exists; everything else is written to a temporary
name and renamed, so a killed process never leaves something that reads as finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from semibench.config import ConfigError, RunConfig, from_dict, to_dict, to_json
from semibench.configfile import dump

DONE = "DONE"


# Keys added after runs were published, left out of the hash while at their default: every earlier run keeps
# its id (its directory resumes, its leaderboard rows still name it), and a run that sets one gets a new id.
ADDED_LATER = {"task": {"balance_if_types": False}, "train": {"prompt_order_seed": None}}


def run_id(cfg: RunConfig) -> str:
    """Readable prefix + a hash of the whole resolved config but its `log` section (where metrics are reported
    changes no numerics): same config, same directory, with or without --report-to."""
    sync = "inf" if cfg.train.sync_every is None else str(cfg.train.sync_every)
    hashed = {k: v for k, v in to_dict(cfg).items() if k != "log"}  # the bytes of to_json before `log` existed: ids unchanged
    for section, defaults in ADDED_LATER.items():
        hashed[section] = {k: v for k, v in hashed[section].items() if not (k in defaults and v == defaults[k])}
    digest = hashlib.sha256(json.dumps(hashed, indent=2, sort_keys=True).encode()).hexdigest()[:8]
    return f"{cfg.task.name}-{cfg.loss.objective}-s{sync}-{cfg.preset}-seed{cfg.train.seed}-{digest}"


def git_commit() -> str | None:
    """The semibench checkout's commit (with `+dirty` when it has uncommitted changes); None outside git."""
    import subprocess

    here = Path(__file__).resolve().parent  # inside the checkout: git finds its root from here
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def export_steps(cfg: RunConfig) -> list[int]:
    """The steps whose checkpoint a run exports: every `train.checkpoint_every` steps and the last."""
    every, steps = cfg.train.checkpoint_every, cfg.train.steps
    return sorted({*range(every, steps + 1, every), steps}) if every else [steps]


def is_done(path: Path) -> bool:
    return (Path(path) / DONE).exists()


def mark_done(path: Path) -> None:
    atomic_write_text(Path(path) / DONE, "")


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it owner-only; results are meant to be shared
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` (same suffix) for a library to write; then rename it to `path`.

    For writers that take a file name (matplotlib's savefig): a killed writer leaves only a hidden
    `.tmp` file, never a truncated `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield `<path>.tmp` to fill; then mark it DONE and rename it to `path`.

    A killed writer leaves only a `.tmp` directory, which the next writer clears and no reader
    takes for finished.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    mark_done(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


class RunLocked(ConfigError):
    """Another live process holds the run directory; the message names it (the CLI prints it as one line)."""


class RunLock:
    """An exclusive lock on one run directory for the holder's lifetime: `runs/.<run_id>.lock`.

    flock(2) on a file beside the directory (a fresh start clears the directory itself): the OS
    releases it when the holder exits or dies, so a stale lock never blocks a resume, and a second
    process on the same run refuses at once instead of clearing the live run under the first. The
    holder removes the file when it lets go, so a finished runs/ holds run directories only.
    """

    def __init__(self, run_path: Path):
        import fcntl
        import socket

        self.fd = -1
        self.path = Path(run_path).parent / f".{Path(run_path).name}.lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise RunLocked(f"{run_path} is in use by {holder}; wait for it to finish or stop it (a dead holder releases it by itself)") from None
            if _same_file(self.path, fd):
                break
            os.close(fd)  # the previous holder removed the file between our open and our lock: take the new one
        self.fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()} on host {socket.gethostname()}".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            if _same_file(self.path, self.fd):
                self.path.unlink()  # while still holding it, so nobody locks the file being removed
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1

    def __del__(self) -> None:
        self.release()


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


class RunDir:
    """One run's directory: the only place that knows its layout (module docstring).

    `RunDir(root, cfg)` is the directory a config trains into; `RunDir.at(path)` an existing one;
    `RunDir.of_checkpoint(path)` the run a checkpoint directory belongs to, if any.
    """

    def __init__(self, root: Path, cfg: RunConfig):
        self._locate(Path(root) / run_id(cfg))

    @classmethod
    def at(cls, path: Path) -> RunDir:
        run = cls.__new__(cls)
        run._locate(Path(path))
        return run

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> RunDir | None:
        """runs/<id> for runs/<id>/checkpoints/step_N (when runs/<id>/config.json exists), else None."""
        checkpoint = Path(checkpoint)
        run = cls.at(checkpoint.parent.parent)
        return run if checkpoint.parent == run.checkpoints and run.config_path.is_file() else None

    def _locate(self, path: Path) -> None:
        self.path = path
        self.id = path.name
        self.config_path = path / "config.json"
        self.config_yaml_path = path / "config.yaml"
        self.metrics_path = path / "metrics.jsonl"
        self.checkpoints = path / "checkpoints"
        self.states = path / "state"
        self.evals = path / "eval"
        self.selection_path = path / "selected.json"  # the checkpoint the reports show, when one was selected
        self.summary_path = path / "summary.json"  # written last by training, with DONE

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / step_name(step)

    def state(self, step: int) -> Path:
        return self.states / step_name(step)

    def eval_dir(self, step: int) -> Path:
        """Where checkpoint `step`'s evaluation results live."""
        return self.evals / step_name(step)

    def done_checkpoints(self) -> list[Path]:
        return sorted(p for p in self.checkpoints.glob("step_*") if is_done(p))

    def drop_checkpoint(self, step: int) -> None:
        """Delete checkpoint `step`: its DONE marker first, so a kill mid-delete leaves no half a checkpoint
        that reads as done."""
        path = self.checkpoint(step)
        (path / DONE).unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)

    def read_config(self) -> RunConfig:
        return from_dict(json.loads(self.config_path.read_text()))

    def start_fresh(self, cfg: RunConfig) -> None:
        """Clear a partial run (no DONE) and write the resolved config, as JSON and as a file to re-run."""
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        atomic_write_text(self.config_path, to_json(cfg) + "\n")
        header = [f"Run {self.id}: its resolved config, every key (config.json holds the same; the run id hashes it).",
                  f"`semibench train --config {self.config_yaml_path}` resolves to this config, so to this run id:",
                  "it resumes the run, or says it is done. Change a value and it is a new run."]
        atomic_write_text(self.config_yaml_path, dump(cfg, header))

    def append_metrics(self, row: dict[str, Any]) -> None:
        # One line per step, flushed: a crash loses at most the step being written.
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()

    def truncate_metrics(self, num_steps: int) -> None:
        """Keep the rows of steps < num_steps (a resumed run re-logs the rest)."""
        rows = [r for r in read_metrics(self.metrics_path) if r["step"] < num_steps]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.metrics_path)


def step_name(step: int) -> str:
    return f"step_{step:06d}"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl (none if it does not exist). The last line may be cut short by a kill
    and is dropped; any other malformed line is corruption, one error naming it."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else []
    rows = []
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if line_no == len(lines):  # the step a kill cut short: it is re-run on resume
                continue
            raise ConfigError(f"{path}:{line_no} is not valid JSON; the metrics file is damaged (restore it, or rerun the run)") from None
    return rows
