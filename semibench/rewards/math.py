"""Binary Math-Verify reward (paper §1.8), scored in worker processes under a per-item CPU-time budget.

Extraction follows the paper's fairseq2 `MathVerifyVerifier`: the gold is parsed as LaTeX with
boxed="none" normalization (wrapped in `$...$` when bare), the prediction with `\\boxed{}` matched
first; reward 1.0 if `verify` holds, else 0.0, and 0.0 on any error.

Bounds, in CPU seconds so that a score never depends on how busy the machine is: each item may use
`timeout_s` of its worker's CPU time (parse the gold, parse the prediction, verify), after which it
scores 0 and counts in `num_timeouts`. math-verify's own timeouts are whole-second wall-clock alarms
per stage; under load a correct answer whose first parse pays sympy's lazy imports (a tuple: ~1 s)
ran past its 1-second alarm and scored 0, uncounted, where an idle machine scored it 1. They are off
here (`parsing_timeout=None`, `timeout_seconds=None`, as math-verify advises when the caller bounds
the work itself). Integers of any number of digits are compared.

`literal_numbers`: when the gold is a number, the prediction must be one too. Math-Verify proves
equality symbolically, so for "Calculate 74 + 2." the answer "74 + 2 = \\$8" parses to the expression
74 + 2 and verifies against 76: a model can be rewarded for restating the question. A run of online
DPO on procedural sums learned exactly that (100% "correct", 0% with the rule). The paper's verifier
has no such rule (its NuminaMath questions rarely contain their answers), so `--preset paper` keeps
it off; procedural arithmetic needs it.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

logger = logging.getLogger(__name__)

EXTRACTIONS = ("latex", "expr")
POLL_S = 0.1  # how often the parent reads a busy worker's CPU time
KILL_FACTOR = 2.0  # the parent kills a worker whose item used this x the budget in CPU time (the worker's own timer failed)
WALL_BACKSTOP_FACTOR, WALL_BACKSTOP_MIN_S = 20.0, 60.0  # ... or that answered nothing for this long (a hang, not load)


class _OverBudget(BaseException):
    """Raised in a worker by SIGPROF when an item has used its CPU time (a BaseException, as math-verify's own
    timeout, so no `except Exception` inside sympy or math-verify swallows it)."""


def _over_budget(signum, frame) -> None:
    raise _OverBudget


def _worker_main(conn: Connection, prediction_extraction: tuple[str, ...], cpu_budget_s: float) -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPROF, _over_budget)
    # math-verify logs each of its timeouts with the whole (up to max_chars) input, and warns once that its own are off.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # A correct 5,000-digit answer failed Python's 4,300-digit int<->str guard and scored 0. The
    # guard protects servers from quadratic conversions; here the per-item budget already does.
    sys.set_int_max_str_digits(0)
    # Imported here, not at module level, so the trainer process never pays for sympy.
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, LatexNormalizationConfig, parse, verify
    from sympy import Number

    gold_normalization = LatexNormalizationConfig(
        basic_latex=True, units=True, malformed_operators=True, nits=True, boxed="none", equations=False
    )
    gold_targets = (LatexExtractionConfig(normalization_config=gold_normalization), ExprExtractionConfig())
    pred_targets = tuple(
        LatexExtractionConfig(boxed_match_priority=0) if kind == "latex" else ExprExtractionConfig()
        for kind in prediction_extraction
    )

    def score(completion: str, gold: str, literal: bool) -> float:
        try:
            gold_parsed = parse(gold if "$" in gold else f"${gold}$", gold_targets, parsing_timeout=None)
            pred_parsed = parse(completion, pred_targets, parsing_timeout=None)
            if literal and gold_parsed and isinstance(gold_parsed[0], Number) and not (pred_parsed and isinstance(pred_parsed[0], Number)):
                return 0.0  # a number's question restated ("74 + 2" for 76) is equal to it, not an answer
            # float_rounding=6 is the paper's `precision=6`.
            return float(verify(gold_parsed, pred_parsed, float_rounding=6, timeout_seconds=None))
        except Exception:
            return 0.0

    def budgeted(completion: str, gold: str, literal: bool = False) -> tuple[float, bool]:
        """(score, whether the item ran out of CPU time): the profiling timer counts this process's CPU time only."""
        try:
            signal.setitimer(signal.ITIMER_PROF, cpu_budget_s)
            try:
                return score(completion, gold, literal), False
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
        except _OverBudget:  # raised in score, or in the instant between its return and the disarm
            return 0.0, True

    # Load the LaTeX parser and sympy's sets and tuples now, so no item's budget pays for the imports.
    for warm in (r"\boxed{1}", r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\boxed{[0, 1)}", r"\boxed{\{1, 2\}}"):
        budgeted(warm, warm)
    conn.send(None)  # ready
    while True:
        try:
            completion, gold, literal = conn.recv()
        except EOFError:  # the parent closed us or died
            return
        conn.send(budgeted(completion, gold, literal))


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    item: int | None = None
    cpu_at_start: float = 0.0  # the worker's CPU seconds when its item was sent
    wall_deadline: float = 0.0  # backstop for a worker that stops using CPU without answering


class MathVerifier:
    """Binary Math-Verify reward, scored in a process pool so a runaway item can be stopped.

    Each item gets `timeout_s` of its worker's CPU time: a profiling timer in the worker stops slow
    sympy work cheaply (the item scores 0.0, the worker serves on). Work that never returns to Python
    (a C loop that ignores the signal) is caught by the parent, which kills the worker once the item
    has used KILL_FACTOR x the budget in CPU time, or a wall-clock backstop of WALL_BACKSTOP_FACTOR x
    the budget (at least a minute) if it hangs without using CPU; its worker is replaced and only
    that item is lost. `num_timeouts` counts both. CPU time, not wall time, so a score is the same on
    a busy machine as on an idle one.
    """

    def __init__(
        self,
        num_workers: int = 2,
        timeout_s: float = 5.0,
        max_chars: int = 8192,
        prediction_extraction: tuple[str, ...] = ("latex", "expr"),
        literal_numbers: bool = False,
    ):
        if num_workers < 1 or timeout_s <= 0 or max_chars < 1:
            raise ValueError("num_workers, timeout_s and max_chars must be positive")
        if not prediction_extraction or not set(prediction_extraction) <= set(EXTRACTIONS):
            raise ValueError(f"prediction_extraction must be a non-empty subset of {EXTRACTIONS}")
        self.timeout_s = timeout_s
        self.max_chars = max_chars
        self.prediction_extraction = tuple(prediction_extraction)
        self.literal_numbers = literal_numbers
        self.num_timeouts = 0
        # spawn, not fork: the trainer has torch's thread pools running, which fork can deadlock.
        self._ctx = mp.get_context("spawn")
        self._workers = [self._start_worker() for _ in range(num_workers)]

    def __call__(self, completions: Sequence[str], golds: Sequence[str], literal_numbers: bool | None = None) -> list[float]:
        """One score per completion. `literal_numbers` (default: the pool's): a gold that is a number needs a
        number, so an expression equal to it scores 0 (see the module docstring)."""
        literal = self.literal_numbers if literal_numbers is None else literal_numbers
        if len(completions) != len(golds):
            raise ValueError(f"{len(completions)} completions but {len(golds)} golds")
        if not self._workers:
            raise RuntimeError("MathVerifier is closed")
        for w in self._workers:
            if w.item is not None:  # left busy by an interrupted call: its late answer would land here
                self._restart(w)
        scores = [0.0] * len(completions)
        todo = deque(range(len(completions)))
        while todo or any(w.item is not None for w in self._workers):
            for w in self._workers:
                if w.ready and w.item is None and todo:
                    i = todo.popleft()
                    if not self._assign(w, i, completions[i], golds[i], literal):
                        todo.appendleft(i)
            busy = [w for w in self._workers if w.item is not None]
            # Busy workers are polled for their CPU time; nothing else needs a wake-up.
            timeout = min(POLL_S, max(0.0, min(w.wall_deadline for w in busy) - time.monotonic())) if busy else None
            waiting = {w.conn: w for w in self._workers if w.item is not None or not w.ready}
            for conn in wait(list(waiting), timeout):
                w = waiting[conn]
                try:
                    message = conn.recv()
                except (EOFError, OSError):  # the worker died
                    w.process.join()
                    if not w.ready and w.process.exitcode > 0:
                        # It raised while starting (e.g. an import error); restarting would loop.
                        raise RuntimeError(f"a math-verify worker failed to start (exit code {w.process.exitcode})") from None
                    if w.item is not None:
                        logger.warning("a math-verify worker died scoring item %d; it scores 0.0", w.item)
                    self._restart(w)
                    continue
                if w.ready:
                    scores[w.item], over_budget = message
                    self.num_timeouts += over_budget
                    w.item = None
                else:
                    w.ready = True
            now = time.monotonic()
            for w in self._workers:
                if w.item is not None and (w.wall_deadline <= now or self._cpu_used(w) > KILL_FACTOR * self.timeout_s):
                    self.num_timeouts += 1
                    self._restart(w)  # its item keeps 0.0
        return scores

    def close(self) -> None:
        for w in self._workers:
            self._stop(w)
        self._workers = []

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start_worker(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main, args=(child_conn, self.prediction_extraction, self.timeout_s), daemon=True
        )
        process.start()
        child_conn.close()  # the worker now holds the only copy, so its death reads as EOF here
        return _Worker(process, parent_conn)

    def _assign(self, w: _Worker, i: int, completion: str, gold: str, literal: bool) -> bool:
        """Send item `i` to `w`; False if `w` had died while idle (then it is restarted, and `i` is not its fault)."""
        try:
            # The answer is at the end; the cut also bounds the work and the pipe traffic.
            w.conn.send((completion[-self.max_chars :], gold, literal))
        except OSError:
            self._restart(w)
            return False
        w.item = i
        w.cpu_at_start = self._cpu_seconds(w)
        w.wall_deadline = time.monotonic() + max(WALL_BACKSTOP_MIN_S, WALL_BACKSTOP_FACTOR * self.timeout_s)
        return True

    def _cpu_used(self, w: _Worker) -> float:
        """CPU seconds the worker has spent on its current item."""
        return self._cpu_seconds(w) - w.cpu_at_start

    @staticmethod
    def _cpu_seconds(w: _Worker) -> float:
        import psutil

        try:
            times = psutil.Process(w.process.pid).cpu_times()
        except psutil.Error:  # it just died: the pipe's EOF reports that
            return w.cpu_at_start
        return times.user + times.system

    def _restart(self, w: _Worker) -> None:
        self._stop(w)
        fresh = self._start_worker()
        w.process, w.conn, w.ready, w.item = fresh.process, fresh.conn, False, None

    @staticmethod
    def _stop(w: _Worker) -> None:
        w.conn.close()
        w.process.kill()  # SIGKILL: a worker stuck in C code may not react to anything gentler
        w.process.join()
