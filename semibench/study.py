"""A grid study from a file and flags: what `semibench grid --config study.yaml [flags]` runs.

The file's `grid:` axes and `eval:` settings sit over the preset's grid defaults (`grid.GRID_DEFAULTS`)
and under the flags; its config keys sit over the preset and the paper's Table 4 row and under `--set`.
Everything that decides a run goes through `GridSpec`, so the same study from a file or from flags
expands to the same configs, hence the same run ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from semibench.configfile import ExperimentFile
from semibench.grid import GridSpec, defaults_for


@dataclass(frozen=True)
class Study:
    spec: GridSpec
    benchmarks: tuple[str, ...]
    eval_overrides: dict[str, Any]  # EvalSettings fields over the preset's grid eval defaults (`grid.eval_settings`)
    launcher: str = "local"
    slurm: dict[str, Any] = field(default_factory=dict)  # SlurmSettings fields the file or flags set


SLURM_KEYS = {"slurm_partition": "partition", "slurm_nodes": "nodes", "slurm_gpus_per_node": "gpus_per_node", "slurm_time": "time_min",
              "slurm_cluster": "cluster"}  # the grid: section's (and flag's) name -> SlurmSettings' field


def plan(experiment: ExperimentFile, flags: dict[str, Any]) -> Study:
    """`flags`: the grid options the user gave, by GridAxes name (None: not given), plus `preset`, `benchmarks`,
    `overrides` (--set, --report-to) and `eval_overrides` (--eval-set). A flag beats the file; the file beats
    the defaults (GridSpec's own for tasks and objectives, the preset's for s values, seeds and benchmarks)."""
    chosen = experiment.grid | {k: v for k, v in flags.items() if v is not None}
    preset = flags.get("preset") or experiment.preset or GridSpec.preset
    axes = {k: chosen[k] for k in ("tasks", "objectives", "sync_every", "seeds") if chosen.get(k) is not None}
    spec = GridSpec(preset=preset, overrides=experiment.run | (flags.get("overrides") or {}), **axes)
    benchmarks = flags.get("benchmarks") or experiment.eval.get("benchmarks") or defaults_for(preset).benchmarks
    eval_overrides = {k: v for k, v in experiment.eval.items() if k != "benchmarks"} | (flags.get("eval_overrides") or {})
    slurm = {field_name: chosen[key] for key, field_name in SLURM_KEYS.items() if chosen.get(key) is not None}
    return Study(spec, tuple(benchmarks), eval_overrides, chosen.get("launcher") or "local", slurm)
