"""A run's trackers as one: catch-up from metrics.jsonl, failures switched off with one warning, and the
grid's evaluations logged once per (tracker, step, result)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from semibench.config import RunConfig
from semibench.runs import atomic_write_json, read_metrics, run_id
from semibench.trackers.adapters import ADAPTERS, Opening, Tracker
from semibench.trackers.records import eval_series, requested, scalars

STATE_FILE = "trackers.json"  # in the run directory: the MLflow run id and which evaluations each tracker holds


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
