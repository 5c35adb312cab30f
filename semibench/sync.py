"""The one dial, and how weights cross to the generator.

With sync interval `s` the generator serves the weights of version `v = floor(step / s) * s`
(version = number of optimizer updates the weights have seen). `s = 1` is online, `1 < s < inf`
semi-online, `s = inf` (None) offline: the seed weights, version 0, forever. Nothing else in
semibench decides the regime; the words "offline/online" are labels for plots only.

A sync pushes the trainer's full state dict to the generator in layer-aligned buckets and stamps
the version only once the generator has confirmed the load; a sync that fails or times out raises
`WeightSyncError` and the run stops (a generator silently left on old weights is the failure the
version stamp exists to make impossible).
"""

from __future__ import annotations

from typing import Sequence


class StaleRolloutError(AssertionError):
    """A batch was produced by weights older than the sync window allows."""


class WeightSyncError(RuntimeError):
    """The generator could not be brought to the requested weights; it must not generate on."""


def window_start(step: int, sync_every: int | None) -> int:
    """Version the generator must serve at `step`."""
    if sync_every is None:
        return 0
    return (step // sync_every) * sync_every


def check_fresh(step: int, version: int, sync_every: int | None) -> None:
    """Raise unless a rollout of weight `version` may train step `step`: `0 <= step - version < s`."""
    staleness = step - version
    limit = float("inf") if sync_every is None else sync_every
    if not 0 <= staleness < limit:
        raise StaleRolloutError(
            f"rollout from weight version {version} used at step {step} (staleness {staleness}, "
            f"sync_every {sync_every if sync_every is not None else 'inf'}): the generator was not synced"
        )


def layer_key(name: str) -> str:
    """The decoder layer a tensor belongs to ("model.layers.3"), or the name itself outside the stack.

    The outermost integer segment marks the layer (as vLLM's `layerwise_groups` does), so it works
    for `model.layers.N`, `transformer.h.N` and friends without a per-architecture table.
    """
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return name


def weight_buckets(sizes: Sequence[tuple[str, int]], max_bytes: int) -> list[list[str]]:
    """Split (name, nbytes) pairs, in order, into buckets of at most `max_bytes`, never splitting a layer.

    A layer's tensors always travel together because vLLM fuses them (q/k/v into one qkv weight,
    gate/up into one) and repacks a layer only once all of it has arrived: a layer cut across two
    reload calls would be half-loaded. A single layer larger than `max_bytes` is a bucket of its own.
    """
    groups: list[tuple[list[str], int]] = []
    for name, nbytes in sizes:
        if groups and layer_key(groups[-1][0][-1]) == layer_key(name):
            groups[-1][0].append(name)
            groups[-1] = (groups[-1][0], groups[-1][1] + nbytes)
        else:
            groups.append(([name], nbytes))
    buckets: list[list[str]] = []
    used = 0
    for names, nbytes in groups:
        if buckets and used + nbytes <= max_bytes:
            buckets[-1] += names
            used += nbytes
        else:
            buckets.append(list(names))
            used = nbytes
    return buckets
