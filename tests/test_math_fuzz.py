"""A small, seeded fuzz of the real Math-Verify reward: hostile answers score 0 or 1, never hang or
crash it, and no known-correct control loses its score. `semibench bench math-fuzz` is the large one."""

import pytest

from semibench.rewards.fuzz import HOSTILE_KINDS, corpus
from semibench.rewards.math import MathVerifier


@pytest.mark.timeout(300)
def test_hostile_completions_never_crash_or_hang_the_reward_and_controls_keep_their_score():
    items = corpus(48, seed=0)
    assert {kind for kind in HOSTILE_KINDS} and sum(expected == 1.0 for _, _, expected in items) == 12
    with MathVerifier(num_workers=2, timeout_s=3.0) as verifier:
        scores = verifier([c for c, _, _ in items], [g for _, g, _ in items])
        assert all(s in (0.0, 1.0) for s in scores)
        assert [s for s, (_, _, expected) in zip(scores, items) if expected == 1.0] == [1.0] * 12
        # The pool still serves after the batch: no worker was left wedged.
        assert verifier([r"\boxed{3}", r"\boxed{4}"], ["3", "5"]) == [1.0, 0.0]


def test_the_corpus_is_seeded():
    assert corpus(16, seed=3) == corpus(16, seed=3) != corpus(16, seed=4)
