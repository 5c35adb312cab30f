"""Binary Math-Verify reward (paper §1.8), scored in worker processes under a hard per-item deadline.

Extraction follows the paper's fairseq2 `MathVerifyVerifier`: the gold is parsed as LaTeX with
boxed="none" normalization (wrapped in `$...$` when bare), the prediction with `\\boxed{}` matched
first; reward 1.0 if `verify` holds, else 0.0, and 0.0 on any error.

Bounds: each item has `timeout_s` of wall time, and math-verify gives each parse and verify stage
`stage_timeout` seconds, so an answer too large to parse within it (e.g. a 500-element tuple takes
more than 1 s) scores 0 even when correct. Integers of any number of digits are compared.
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


def _worker_main(conn: Connection, prediction_extraction: tuple[str, ...], stage_timeout: int) -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # math-verify logs each of its timeouts with the whole (up to max_chars) input.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # A correct 5,000-digit answer failed Python's 4,300-digit int<->str guard and scored 0. The
    # guard protects servers from quadratic conversions; here the per-item deadline already does.
    sys.set_int_max_str_digits(0)
    # Imported here, not at module level, so the trainer process never pays for sympy.
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, LatexNormalizationConfig, parse, verify
    from math_verify.errors import TimeoutException

    gold_normalization = LatexNormalizationConfig(
        basic_latex=True, units=True, malformed_operators=True, nits=True, boxed="none", equations=False
    )
    gold_targets = (LatexExtractionConfig(normalization_config=gold_normalization), ExprExtractionConfig())
    pred_targets = tuple(
        LatexExtractionConfig(boxed_match_priority=0) if kind == "latex" else ExprExtractionConfig()
        for kind in prediction_extraction
    )

    def score(completion: str, gold: str) -> float:
        try:
            gold_parsed = parse(gold if "$" in gold else f"${gold}$", gold_targets, parsing_timeout=stage_timeout)
            pred_parsed = parse(completion, pred_targets, parsing_timeout=stage_timeout)
            # float_rounding=6 is the paper's `precision=6`.
            return float(verify(gold_parsed, pred_parsed, float_rounding=6, timeout_seconds=stage_timeout))
        except (Exception, TimeoutException):  # TimeoutException is a BaseException
            return 0.0

    score(r"\boxed{1}", "1")  # load the LaTeX parser now, so no item's deadline pays for it
    conn.send(None)  # ready
    while True:
        try:
            completion, gold = conn.recv()
        except EOFError:  # the parent closed us or died
            return
        conn.send(score(completion, gold))


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    item: int | None = None
    deadline: float = 0.0


class MathVerifier:
    """Binary Math-Verify reward, scored in a process pool so math-verify's signal-based timeouts work.

    Each item gets `timeout_s` of wall time in a worker. math-verify's own SIGALRM timeouts stop
    most slow sympy work cheaply; whatever outlives the deadline (work that never checks signals,
    a hung or crashed worker) is scored 0.0, its worker is killed and replaced, and only that item
    is lost: the other workers keep their items. `num_timeouts` counts items killed at the deadline.
    """

    def __init__(
        self,
        num_workers: int = 2,
        timeout_s: float = 5.0,
        max_chars: int = 8192,
        prediction_extraction: tuple[str, ...] = ("latex", "expr"),
    ):
        if num_workers < 1 or timeout_s <= 0 or max_chars < 1:
            raise ValueError("num_workers, timeout_s and max_chars must be positive")
        if not prediction_extraction or not set(prediction_extraction) <= set(EXTRACTIONS):
            raise ValueError(f"prediction_extraction must be a non-empty subset of {EXTRACTIONS}")
        self.timeout_s = timeout_s
        self.max_chars = max_chars
        self.prediction_extraction = tuple(prediction_extraction)
        self.num_timeouts = 0
        # math-verify guards gold parsing, prediction parsing and verify with separate whole-second
        # alarms; a third of the budget each lets them fire before the (costlier) outer kill.
        self._stage_timeout = max(1, int(timeout_s) // 3)
        # spawn, not fork: the trainer has torch's thread pools running, which fork can deadlock.
        self._ctx = mp.get_context("spawn")
        self._workers = [self._start_worker() for _ in range(num_workers)]

    def __call__(self, completions: Sequence[str], golds: Sequence[str]) -> list[float]:
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
                    if not self._assign(w, i, completions[i], golds[i]):
                        todo.appendleft(i)
            busy = [w for w in self._workers if w.item is not None]
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic()) if busy else None
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
                    scores[w.item] = message
                    w.item = None
                else:
                    w.ready = True
            now = time.monotonic()
            for w in self._workers:
                if w.item is not None and w.deadline <= now:
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
            target=_worker_main, args=(child_conn, self.prediction_extraction, self._stage_timeout), daemon=True
        )
        process.start()
        child_conn.close()  # the worker now holds the only copy, so its death reads as EOF here
        return _Worker(process, parent_conn)

    def _assign(self, w: _Worker, i: int, completion: str, gold: str) -> bool:
        """Send item `i` to `w`; False if `w` had died while idle (then it is restarted, and `i` is not its fault)."""
        try:
            # The answer is at the end; the cut also bounds the work and the pipe traffic.
            w.conn.send((completion[-self.max_chars :], gold))
        except OSError:
            self._restart(w)
            return False
        w.item = i
        w.deadline = time.monotonic() + self.timeout_s
        return True

    def _restart(self, w: _Worker) -> None:
        self._stop(w)
        fresh = self._start_worker()
        w.process, w.conn, w.ready, w.item = fresh.process, fresh.conn, False, None

    @staticmethod
    def _stop(w: _Worker) -> None:
        w.conn.close()
        w.process.kill()  # SIGKILL: a worker stuck in C code may not react to anything gentler
        w.process.join()
