"""Resumable training state and HF export.

State = everything a run needs to continue bit-for-bit: policy, reference and generator weights
(the generator's are the current window's start, not the latest: semi-online semantics must hold
across a crash), optimizer state, the step and the generator version. Data order, sampling and
pair choice are pure functions of (seed, step), so no RNG state needs saving.

Single process for now: `torch.save` of full state dicts. Sharded (DCP) state arrives with FSDP2.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from semibench.runs import atomic_dir, is_done

STATE_FILE = "state.pt"


def save_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_dir(path) as tmp:
        torch.save(state, tmp / STATE_FILE)


def latest_state(root: Path) -> Path | None:
    """The newest complete state directory under `root` (named step_NNNNNN), or None."""
    done = [p for p in sorted(Path(root).glob("step_*")) if not p.name.endswith(".tmp") and is_done(p)]
    return done[-1] if done else None


def load_state(path: Path) -> dict[str, Any]:
    return torch.load(Path(path) / STATE_FILE, weights_only=True)


def prune_states(root: Path, keep: Path) -> None:
    """Only the newest state is needed to resume; older ones are gigabytes each on a real model."""
    for p in Path(root).glob("step_*"):
        if p != keep:
            shutil.rmtree(p, ignore_errors=True)


def export_hf(model: torch.nn.Module, tokenizer, path: Path) -> None:
    """HF safetensors + tokenizer: what `AutoModelForCausalLM.from_pretrained` and `semibench eval` read."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
