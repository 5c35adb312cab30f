"""Resumable training state (torch Distributed Checkpoint) and the HF export.

runs/<id>/state/step_N/         written by every rank, renamed into place by rank 0, then DONE
  .metadata, __<rank>_0.distcp  DCP: policy weights, AdamW state and, when a resume can land
                                inside a sync window, the window-start weights (each rank its shards)
  trainer.json                  step, generator version, world size at save time
  rng_rank<r>.pt                each rank's torch and Python RNG states

What a resume needs and why that is all of it:
- The step is the data position (`PromptSampler.batch(step)` is a pure function of it) and the
  scheduler position (`lr_at(step)`); generation sampling is seeded by (seed, the generate call's
  first step) and pair choice by (seed, "pairs", step), so no sampler or scheduler object has state of its own.
- The generator must serve the weights of its window's start, not the latest policy: a run killed
  at step 5 with s = 4 resumes generating from version 4. Those weights are saved with the state
  (`WindowStart`); the reference, when `ref_sync` is on, is the same weights, and so is the frozen
  module the lag diagnostic runs (`WindowStart.model`, 1 < s < inf without `ref_sync`). At a window boundary
  (or for s = 1) the loop re-syncs from the restored policy, and version 0 is the initial model, so
  nothing extra is kept then.
- DCP stores shards with their global layout, so a state saved by N ranks loads on M ranks.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict, set_model_state_dict, set_optimizer_state_dict

from semibench.config import ConfigError
from semibench.runs import atomic_dir, atomic_write_json, is_done
from semibench.sync import window_start
from semibench.training import dist
from semibench.training.dist import World

TRAINER_FILE = "trainer.json"


def saves_mid_window(sync_every: int | None, resume_every: int, steps: int) -> bool:
    """Whether some state will be saved strictly inside a sync window that starts after version 0.

    Only then must the window-start weights be kept (e.g. s = 100 with a state every 50 steps; not
    s = 10 with a state every 50, nor s = 1, nor s = inf, whose one window is the initial model).
    """
    if sync_every is None or not resume_every:
        return False
    return any(0 < window_start(t, sync_every) < t for t in range(resume_every, steps, resume_every))


class WindowStart:
    """The trainer-side copy of the weights the generator serves in the current sync window.

    Kept (sharded like the policy, copied into the same buffers at each sync) only when
    `saves_mid_window`, or when `model` is given; it costs one copy of the policy's weights, split
    across ranks. Its `version` is the generator's. `model`: a frozen module of the policy's
    architecture (prepared like it) whose own weights are the kept copy, so the window's weights can
    run a forward (the trainer's `mismatch_kl_lag` diagnostic); it starts as the initial model, version 0.
    """

    def __init__(self, keep: bool, model: nn.Module | None = None):
        self.keep = keep or model is not None
        self.model = model
        self.version = 0
        self._weights: dict[str, torch.Tensor] = {}

    @property
    def weights(self) -> dict[str, torch.Tensor]:
        """The kept weights (sharded like the policy); with a model, its state dict, read afresh: FSDP2
        may swap a module's shard storage at its first forward, so no earlier read stays bound to it."""
        return dict(self.model.state_dict()) if self.model is not None else self._weights

    @weights.setter
    def weights(self, value: dict[str, torch.Tensor]) -> None:
        self._weights = value

    def capture(self, model: nn.Module, version: int) -> None:
        if self.model is not None:
            dist.copy_weights_(self.model, model)
        elif self.keep:
            dist.snapshot_(self._weights, model)
        self.version = version


def save_state(path: Path, world: World, model: nn.Module, optimizer: torch.optim.Optimizer, window: WindowStart, step: int, sync_every: int | None) -> None:
    """State to resume at `step`. Collective: every rank writes its shards; the state appears (with
    DONE) only once all have."""
    state = {"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, optimizer)}
    mid_window = 0 < window.version == window_start(step, sync_every)
    if mid_window:
        if not window.keep:
            raise RuntimeError(f"state at step {step} falls inside the window of version {window.version}, whose weights were not kept")
        state["window"] = window.weights
    with _atomic_dir_all_ranks(path, world) as tmp:
        with _single_process_is_intended():
            dcp.save(state, checkpoint_id=tmp, no_dist=not world.sharded)
        torch.save(_rng_state(), tmp / f"rng_rank{world.rank}.pt")
        if world.is_main:
            atomic_write_json(tmp / TRAINER_FILE, {
                "step": step,  # = data position and scheduler position (both pure functions of it)
                "generator_version": window.version,
                "window_weights": mid_window,
                "world_size": world.size,
            })


def load_state(path: Path, world: World, model: nn.Module, optimizer: torch.optim.Optimizer, window: WindowStart) -> int:
    """Restore policy, optimizer, RNG and the window-start weights (into `window`); returns the step."""
    trainer = json.loads((Path(path) / TRAINER_FILE).read_text())
    # Templates: DCP loads into tensors shaped like this rank's shards (the optimizer's are made by a
    # zero-lr step when it has not stepped yet; the load then overwrites them).
    state = {"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, optimizer)}
    if trainer["window_weights"]:
        state["window"] = dist.snapshot_({}, model)
    with _single_process_is_intended():
        dcp.load(state, checkpoint_id=path, no_dist=not world.sharded)
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optimizer"])
    rng = Path(path) / f"rng_rank{world.rank}.pt"
    if rng.exists():  # absent when resuming on more ranks than saved; nothing depends on it today
        _set_rng_state(torch.load(rng, weights_only=False))
    # Not mid-window: the generator starts from version 0 (the initial weights) and the loop syncs
    # at once if `step` opens a new window.
    window.version = trainer["generator_version"] if trainer["window_weights"] else 0
    if window.model is None:
        window.weights = state.get("window", {})
    elif "window" in state:  # else the window is version 0, the initial weights window.model was made from
        dist.copy_state_(window.model, state["window"])
    return trainer["step"]


def latest_state(root: Path) -> Path | None:
    """The newest complete state directory under `root` (named step_NNNNNN), or None."""
    done = [p for p in sorted(Path(root).glob("step_*")) if not p.name.endswith(".tmp") and is_done(p)]
    return done[-1] if done else None


def states_held(resume_every: int, steps: int) -> int:
    """How many resumable states a run holds on disk at once: none when it saves none (short runs,
    resume_every 0), one for a single save, two from the second on (the new one is written before
    the old one is pruned)."""
    saves = len(range(resume_every, steps, resume_every)) if resume_every else 0
    return min(saves, 2)


def weight_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def state_bytes(weights: int, window_weights: bool) -> int:
    """One resumable state: the weights, AdamW's two moments (+ the window's weights)."""
    return weights * (3 + int(window_weights))


def bytes_needed(weights: int, checkpoints: int, window_weights: bool, states: int = 2) -> int:
    """Disk a run writes, at most: `states` resumable states at once (`states_held`) and its HF exports
    (`checkpoints` of them, each the weights: they stay when the run ends; the states go)."""
    return states * state_bytes(weights, window_weights) + checkpoints * weights


def check_free_space(directory: Path, needed: int, writer: str = "this run writes") -> None:
    """One clear line before training, instead of a torn state and torch's traceback when the disk fills."""
    path = Path(directory).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())  # the run directory may not exist yet
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise ConfigError(f"{free / 1e9:.1f} GB free on the disk of {directory}, and {writer} up to {needed / 1e9:.1f} GB "
                      "(resumable states and checkpoints): free some space or pass --out on another disk")


def drop_states(root: Path) -> None:
    """A finished run resumes nothing: its states (3x the weights each: 1.7 GB for SmolLM2) go."""
    shutil.rmtree(root, ignore_errors=True)


def prune_states(root: Path, keep: Path) -> None:
    """Only the newest state is needed to resume; older ones are gigabytes each on a real model."""
    for p in Path(root).glob("step_*"):
        if p != keep:
            shutil.rmtree(p, ignore_errors=True)


def export_hf(model: nn.Module, tokenizer, path: Path, world: World) -> None:
    """HF safetensors + tokenizer, written by rank 0 from the gathered full weights. Collective.

    What `AutoModelForCausalLM.from_pretrained` and `semibench eval` read.
    """
    full = dist.full_state_dict(model, world)
    if world.is_main:
        # A tied parameter (lm_head = embeddings) has two names in the state dict; write it once,
        # under its first name, as HF's own save does.
        seen: set[int] = set()
        for name, param in model.named_parameters(remove_duplicate=False):
            if id(param) in seen:
                full.pop(name, None)
            seen.add(id(param))
        with atomic_dir(path) as tmp:
            model.save_pretrained(tmp, state_dict=full, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    dist.barrier(world)


@contextlib.contextmanager
def _single_process_is_intended() -> Iterator[None]:
    """DCP warns at every save/load without a process group; one process is a supported mode here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


@contextlib.contextmanager
def _atomic_dir_all_ranks(path: Path, world: World) -> Iterator[Path]:
    """`runs.atomic_dir` for a directory every rank writes into: rank 0 creates, finishes and renames it."""
    if world.is_main:
        with atomic_dir(path) as tmp:
            dist.barrier(world)  # tmp exists
            yield tmp
            dist.barrier(world)  # every rank has written
    else:
        dist.barrier(world)
        yield Path(path).with_name(Path(path).name + ".tmp")
        dist.barrier(world)
    dist.barrier(world)  # renamed and DONE: nobody races ahead to the next save or prune


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
