"""The one dial: which weight version the generator serves at each step.

With sync interval `s` the generator serves the weights of version `v = floor(step / s) * s`
(version = number of optimizer updates the weights have seen). `s = 1` is online, `1 < s < inf`
semi-online, `s = inf` (None) offline: the seed weights, version 0, forever. Nothing else in
semibench decides the regime; the words "offline/online" are labels for plots only.
"""

from __future__ import annotations


class StaleRolloutError(AssertionError):
    """A batch was produced by weights older than the sync window allows."""


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
