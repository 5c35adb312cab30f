"""What a run becomes in a tracker: which trackers a config asks for, its tags and hyperparameters, the
numeric series of a metrics row and of a checkpoint's evaluation, and the names each library accepts."""

from __future__ import annotations

import importlib
import re
from typing import Any

from semibench.config import ConfigError, RunConfig, flatten, regime_label

NAMES = ("tensorboard", "mlflow", "wandb", "trackio")
# name -> (modules to import, the pip requirements the `trackers` extra pins). MLflow's local default is its
# SQLite store, which needs SQLAlchemy and Alembic (the full `mlflow` package brings them; mlflow-skinny does not).
PACKAGES = {"tensorboard": (("tensorboard",), "tensorboard"), "mlflow": (("mlflow", "sqlalchemy", "alembic"), "mlflow-skinny, sqlalchemy and alembic"),
            "wandb": (("wandb",), "wandb"), "trackio": (("trackio",), "trackio")}
INSTALL = 'pip install -e ".[trackers]"'


def requested(cfg: RunConfig) -> tuple[str, ...]:
    """The trackers a config reports to, in order, without duplicates ("none" alone means none; "all" means all four)."""
    names: list[str] = []
    for name in cfg.log.report_to:
        names += NAMES if name == "all" else [] if name == "none" else [name]
    return tuple(dict.fromkeys(names))


def check_installed(names: tuple[str, ...]) -> None:
    """Refuse, with one line, a tracker whose package does not import (before anything is trained)."""
    for name in names:
        modules, requirement = PACKAGES[name]
        try:
            for module in modules:
                importlib.import_module(module)
        except ImportError:
            raise ConfigError(f"--report-to {name} needs {requirement}, which are not all installed: {INSTALL} "
                              f"(or pip install {requirement.replace(' and ', ', ')})") from None


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


# MLflow's file store kept a series as a file under its name, so `reward` could not sit beside `reward/math`:
# in MLflow (any store, for one naming, and the same names as runs logged before SQLite) a series that is also
# the folder of others gets `/all`.
MLFLOW_PARENTS = ("reward", "frac_valid_prompts")


def mlflow_name(key: str) -> str:
    return f"{key}/all" if key in MLFLOW_PARENTS else key


def wandb_id(name: str) -> str:
    """A W&B run id from a semibench run id (W&B allows letters, digits, - and _; at most 64 characters)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[-64:]
