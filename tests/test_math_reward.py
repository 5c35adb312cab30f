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
def test_pathological_completions_score_zero_within_their_budget():
    with MathVerifier(num_workers=2, timeout_s=1.0) as v:
        v([r"\boxed{1}"], ["1"])  # warm-up: workers are started and loaded
        completions = [*PATHOLOGICAL, r"The final answer is $\boxed{42}$."]
        start = time.monotonic()
        scores = v(completions, ["42"] * len(completions))
        elapsed = time.monotonic() - start
    assert scores == [0.0] * len(PATHOLOGICAL) + [1.0]
    # Each item stops at 1 CPU second (2 if the parent must kill it): 7 s of CPU on two workers when the
    # machine is idle; in wall time that stretches with load, so the bound here is only "never hangs".
    assert elapsed < 60.0, f"pathological batch took {elapsed:.1f} s"


@pytest.mark.timeout(120)
def test_budget_stops_only_the_overrunning_items():
    """Each slow item stops at its CPU budget and counts as a timeout; the others, on the same workers, score."""
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


@pytest.mark.timeout(300)
def test_scores_do_not_depend_on_load():
    """A fresh pool scores MATH-500's answers the same on a loaded machine as on an idle one.

    The regression: math-verify's own 1-second wall-clock alarms fired on a loaded machine while the
    first tuple answer paid sympy's lazy imports, and a correct answer scored 0, uncounted. Here the
    machine is loaded 3x over, and the workers are also descheduled outright (stopped for 0.4 s,
    run for 0.04 s, over and over) as a busy scheduler may do, which makes the old wall-clock
    alarms fire every time while CPU-time budgets do not move.
    """
    import json
    import subprocess
    import sys
    import threading
    from pathlib import Path

    rows = [json.loads(line) for line in (Path(__file__).resolve().parents[1] / "tasks/data/math500/test.jsonl").read_text().splitlines()[:12]]
    completions = [rf"The final answer is $\boxed{{{r['answer']}}}$. I hope it is correct." for r in rows] + [r"$\boxed{12345}$"] * 2
    golds = [r["answer"] for r in rows] + [rows[0]["answer"], rows[1]["answer"]]

    def score(deschedule: bool) -> tuple[list[float], int]:
        before = set(mp.active_children())
        with MathVerifier(num_workers=2) as v:
            v([r"\boxed{1}"], ["1"])  # started and ready, as a pool is when a trainer or an evaluation uses it
            workers = [p.pid for p in mp.active_children() if p not in before]
            done = threading.Event()

            def stop_and_go() -> None:
                while not done.is_set():
                    for sig, pause in ((signal.SIGSTOP, 0.4), (signal.SIGCONT, 0.04)):
                        for pid in workers:
                            try:
                                os.kill(pid, sig)
                            except ProcessLookupError:
                                pass
                        time.sleep(pause)

            cycler = threading.Thread(target=stop_and_go, daemon=True)
            if deschedule:
                cycler.start()
            try:
                return v(completions, golds), v.num_timeouts
            finally:
                done.set()
                if deschedule:
                    cycler.join()
                for pid in workers:
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except ProcessLookupError:
                        pass

    idle = score(deschedule=False)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3 * (os.cpu_count() or 1))]
    try:
        loaded = score(deschedule=True)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert idle == loaded
    assert loaded[1] == 0 and sum(loaded[0]) >= 11  # MATH-500's own answers verify against themselves (not every one parses)


@pytest.mark.parametrize("completion, gold, paper, literal", [
    (r"74 + 2 = \$8", "76", 1.0, 0.0),  # learned by online DPO on procedural sums: the question restated, then junk
    (r"95 + 76 = \text-8", "171", 1.0, 0.0),
    (r"The answer is $\boxed{26+28}$", "54", 1.0, 0.0),
    ("74 + 2 = 76", "76", 1.0, 1.0),  # the last number is the answer
    ("74 + 2 = 86", "76", 0.0, 0.0),
    (r"The final answer is $\boxed{\frac{1}{2}}$.", "0.5", 1.0, 1.0),  # a number in another form is still a number
    (r"$\boxed{-93}$", "-93", 1.0, 1.0),
    (r"The final answer is $\boxed{x^2+2x+1}$.", "(x+1)^2", 1.0, 1.0),  # the gold is no number: no rule
])
def test_a_numeric_gold_needs_a_number_not_the_question_restated(verifier, completion, gold, paper, literal):
    assert verifier([completion], [gold], literal_numbers=False) == [paper]
    assert verifier([completion], [gold], literal_numbers=True) == [literal]


def test_presets_choose_the_literal_rule():
    from semibench import config

    assert config.resolve("smol", {"task.name": "math"}).reward.math_literal_numbers is True
    assert config.resolve("paper", {"task.name": "math"}).reward.math_literal_numbers is False  # the paper's verifier
