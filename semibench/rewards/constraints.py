"""The verifiable instruction-following reward: 1.0 when a completion follows every constraint its prompt
carries, else 0.0, checked by lm-eval's IFEval code (`semibench.constraints`), IFEval's prompt-level strict
score. Not the paper's non-verifiable reward model: a stand-in that a 2-core CPU can afford and that the
held-out benchmark (`if_heldout`) measures the same way."""

from __future__ import annotations

from collections.abc import Sequence

from semibench.constraints import follows_all, parse_spec


class ConstraintReward:
    def __call__(self, golds: Sequence[str | None], completions: Sequence[str]) -> list[float]:
        return [follows_all(parse_spec(gold, "an IF prompt"), text) for gold, text in zip(golds, completions)]
