"""MathVerifier: paper-style Math-Verify rewards, and that no completion can hang or crash scoring."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest

from semibench.rewards.math import MathVerifier

PATHOLOGICAL = [
    r"\boxed{10^{10^{10^{10}}}}",
    "The answer is 9**9**9**9",
    r"The answer is $\boxed{2^{2^{40}}}$",
    r"\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "The answer is " + "(" * 5000 + "1" + ")" * 5000,
    "$" + r"\left(" * 3000 + "1" + r"\right)" * 3000 + "$",
    "1 + " * 250_000 + "1",  # 1 MB
]


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(num_workers=2) as v:
        yield v


@pytest.mark.parametrize(
    "completion, gold, reward",
    [
        (r"\boxed{42}", "42", 1.0),
        (r"The final answer is $\boxed{\frac{1}{2}}$. I hope it is correct.", "0.5", 1.0),
        (r"So $x = \frac{3}{4}$, and the final answer is $\boxed{\frac{3}{4}}$.", "0.75", 1.0),
        (r"The answer is $\frac{3}{4}$", "$0.75$", 1.0),
        ("Natalia sold 48/2 = 24 clips in May, so she sold 48+24 = 72 clips.", "72", 1.0),  # GSM8K style
        (r"\boxed{1{,}000}", "1,000", 1.0),
        (r"The final answer is $\boxed{x^2+2x+1}$.", "(x+1)^2", 1.0),
        (r"$\sqrt{2}/2$", r"\frac{\sqrt{2}}{2}", 1.0),
        (r"$\{1,2\}$", r"$\{2,1\}$", 1.0),
        (r"\boxed{43}", "42", 0.0),
        (r"The final answer is $\boxed{\frac{1}{3}}$.", "0.5", 0.0),
        ("", "42", 0.0),
        ("I am not sure.", "42", 0.0),
        ("$[0,1)$", "$[0,1]$", 0.0),
        (r"\boxed{42}", "", 0.0),  # an unparsable gold never rewards
        (r"\boxed{42}", None, 0.0),
    ],
)
def test_reward_table(verifier, completion, gold, reward):
    assert verifier([completion], [gold]) == [reward]


def test_batch_keeps_order(verifier):
    completions = [rf"\boxed{{{i}}}" for i in range(50)]
    golds = [str(i if i % 2 else i + 1) for i in range(50)]
    assert verifier(completions, golds) == [float(i % 2) for i in range(50)]
    assert verifier([], []) == []


def test_only_the_end_of_a_long_completion_is_read(verifier):
    filler = "blah " * 2000  # 10,000 chars > max_chars
    assert verifier([filler + r"\boxed{42}", r"\boxed{42} " + filler], ["42", "42"]) == [1.0, 0.0]


def test_latex_only_extraction_ignores_plain_text_answers():
    """The paper's setting: a prediction without LaTeX never matches."""
    with MathVerifier(num_workers=1, prediction_extraction=("latex",)) as v:
        completions = ["so she sold 72 clips.", "The answer is 72", r"so she sold $\boxed{72}$ clips."]
        assert v(completions, ["72"] * 3) == [0.0, 0.0, 1.0]


@pytest.mark.timeout(120)
def test_pathological_completions_score_zero_fast(verifier):
    verifier([r"\boxed{1}"], ["1"])  # warm-up: workers are started and loaded
    completions = [*PATHOLOGICAL, r"The final answer is $\boxed{42}$."]
    start = time.monotonic()
    scores = verifier(completions, ["42"] * len(completions))
    elapsed = time.monotonic() - start
    assert scores == [0.0] * len(PATHOLOGICAL) + [1.0]
    assert elapsed < 5.0, f"pathological batch took {elapsed:.1f} s"


@pytest.mark.timeout(120)
def test_deadline_kills_only_the_overrunning_items():
    """With timeout_s below math-verify's own 1 s alarms, only the outer kill can stop these."""
    with MathVerifier(num_workers=2, timeout_s=0.5) as v:
        v([r"\boxed{1}"], ["1"])
        slow = [PATHOLOGICAL[0], PATHOLOGICAL[1]]
        completions = [slow[0]] + [rf"\boxed{{{i}}}" for i in range(10)] + [slow[1]] + [rf"\boxed{{{i}}}" for i in range(10)]
        golds = ["1"] + [str(i) for i in range(10)] + ["1"] + [str(i) for i in range(10)]
        assert v(completions, golds) == [0.0] + [1.0] * 10 + [0.0] + [1.0] * 10
        assert v.num_timeouts == 2
        assert v([r"\boxed{5}", r"\boxed{6}"], ["5", "7"]) == [1.0, 0.0]  # replaced workers serve on


def test_a_worker_that_died_while_idle_is_replaced():
    before = set(mp.active_children())
    with MathVerifier(num_workers=2) as v:
        workers = [p for p in mp.active_children() if p not in before]
        assert v([r"\boxed{1}"], ["1"]) == [1.0]
        for p in workers:  # e.g. the OOM killer
            os.kill(p.pid, signal.SIGKILL)
            p.join()
        assert v([rf"\boxed{{{i}}}" for i in range(6)], [str(i) for i in range(6)]) == [1.0] * 6
        assert v.num_timeouts == 0


def test_an_interrupted_call_does_not_leak_into_the_next(verifier):
    with pytest.raises(TypeError):  # raised in the parent while a worker is busy on item 0
        verifier([PATHOLOGICAL[0], None], ["1", "1"])
    assert verifier([r"\boxed{7}", r"\boxed{8}"], ["7", "8"]) == [1.0, 1.0]


def test_rejects_bad_arguments(verifier):
    with pytest.raises(ValueError):
        verifier(["a", "b"], ["a"])
    with pytest.raises(ValueError):
        MathVerifier(prediction_extraction=("latex", "regex"))
    v = MathVerifier(num_workers=1)
    v.close()
    with pytest.raises(RuntimeError):
        v([r"\boxed{1}"], ["1"])
