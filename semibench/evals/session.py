"""What one `semibench eval` call shares across benchmarks: prompts in, completions out, resumable on disk.

`Session` holds the evaluated model's tokenizer and generator, the Math-Verify pool and the judge, each
built on first use. `Session.complete` returns N completions per prompt, generating only the prompts
its `SampleStore` lacks and appending each finished batch, so a killed eval regenerates nothing it had
finished; a store drops rows written under other generation settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from semibench.runs import RunDir, atomic_write_text

if TYPE_CHECKING:
    from semibench.evals.data import Origin
    from semibench.evals.settings import EvalSettings

Progress = Callable[[str, int, int], None]  # (label, prompts done, prompts total)
# Sequences per generate call when the settings leave it open. vLLM schedules its own batches, and a long
# call amortises the few completions that run to the token limit, which otherwise hold back every short call.
DEFAULT_BATCH = {"hf": 32, "vllm": 512}


def model_name(checkpoint: Path) -> str:
    """A readable, file-name-safe name for the evaluated model (AlpacaEval generator, Arena-Hard model)."""
    run = RunDir.of_checkpoint(checkpoint)
    name = f"{run.id}.{checkpoint.name}" if run is not None else checkpoint.name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def prompt_key(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:20]


def fingerprint(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


class SampleStore:
    """JSONL rows keyed by `key`, appended (and flushed) as prompts finish; rows of other settings are dropped on open.

    A kill leaves at most a cut last line, which is ignored.
    """

    def __init__(self, path: Path, settings_id: str):
        self.path, self.settings_id = Path(path), settings_id
        self.rows: dict[str, dict] = {}
        stale = 0
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the line a kill cut short
                    stale += 1
                    continue
                if row.get("settings_id") == settings_id:
                    self.rows[row["key"]] = row
                else:
                    stale += 1
        if stale:
            self.rewrite(list(self.rows.values()))

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def append(self, rows: Sequence[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            for row in rows:
                row = {**row, "settings_id": self.settings_id}
                self.rows[row["key"]] = row
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def rewrite(self, rows: Sequence[dict]) -> None:
        rows = [{**row, "settings_id": self.settings_id} for row in rows]
        atomic_write_text(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        self.rows = {r["key"]: r for r in rows}


@dataclass(frozen=True)
class GenRequest:
    key: str
    prompt: str  # the model's full input text, chat template applied
    stop: tuple[str, ...] = ()
    max_new_tokens: int | None = None  # None: the settings' value


def load_generator(checkpoint: Path, settings: EvalSettings):
    """(generator, engine name): vLLM when installed (engine "auto"), else HF transformers."""
    from semibench.engines import load_generator as load
    from semibench.engines.hf import HFGenerator
    from semibench.hardware import torch_dtype

    generator = load(str(checkpoint), settings.engine, torch_dtype(settings.dtype), settings.seed, settings.batch_size or DEFAULT_BATCH["hf"])
    return generator, "hf" if isinstance(generator, HFGenerator) else "vllm"


class Session:
    """What one `evaluate` call shares across benchmarks: tokenizer, generator, Math-Verify pool and judge, each built on first use."""

    def __init__(self, checkpoint: Path, settings: EvalSettings, out_dir: Path, progress: Progress | None, origin: Origin | None = None):
        self.checkpoint, self.settings, self.out_dir = checkpoint, settings, out_dir
        self.origin = origin  # the training the held-out sets follow (evaluate's `origin`)
        self.progress = progress or (lambda label, done, total: None)
        self.model_name = model_name(checkpoint)
        self._tokenizer = self._generator = self._verifier = self._judge = None
        self.load_seconds: float | None = None
        from semibench.config import resolve_engine

        self.engine = resolve_engine(settings.engine)  # known before loading: results on disk are matched by it
        self.scratch = Path(tempfile.mkdtemp(prefix="semibench-eval-"))

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from semibench.models import load_tokenizer

            self._tokenizer = load_tokenizer(str(self.checkpoint))
            if self.settings.chat_template:  # e.g. a grid's seed row, prompted like its trained checkpoints
                from semibench.tasks import chat_template

                self._tokenizer.chat_template = chat_template(self.settings.chat_template)
        return self._tokenizer

    @property
    def generator(self):
        if self._generator is None:
            start = time.monotonic()
            self._generator, self.engine = load_generator(self.checkpoint, self.settings)
            self.load_seconds = time.monotonic() - start  # reported by the benchmark that paid for it
        return self._generator

    @property
    def verifier(self):
        if self._verifier is None:
            from semibench.rewards.math import MathVerifier

            self._verifier = MathVerifier(num_workers=2)
        return self._verifier

    @property
    def verifier_timeouts(self) -> int:
        """Items the Math-Verify pool has stopped at their CPU budget so far (0 before it is built)."""
        return 0 if self._verifier is None else self._verifier.num_timeouts

    @property
    def judge(self):
        if self._judge is None:
            from semibench.evals.judges import make_judge

            s = self.settings
            self._judge = make_judge(s.judge, s.dtype, 8, s.judge_max_new_tokens)
        return self._judge

    def chat(self, user: str) -> str:
        """A single user turn, rendered by the evaluated model's chat template."""
        return self.tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)

    def generation_id(self) -> str:
        """What makes two generations interchangeable (not the sample count: rows with enough samples are reused)."""
        s = self.settings
        return fingerprint({"temperature": s.temperature, "top_p": s.top_p, "max_new_tokens": s.max_new_tokens, "seed": s.seed, "engine": self.engine, "dtype": s.dtype})

    def store(self, stem: str, settings_id: str | None = None) -> SampleStore:
        return SampleStore(self.out_dir / f"{stem}.samples.jsonl", settings_id or self.generation_id())

    def complete(self, store: SampleStore, requests: Sequence[GenRequest], label: str) -> list[list[str]]:
        """`samples_per_prompt` completions per request; missing ones are generated in batches and appended to `store`."""
        from semibench.engines.base import Sampling

        s, n = self.settings, self.settings.samples_per_prompt
        unique = list({r.key: r for r in requests}.values())
        todo = [r for r in unique if r.key not in store or len(store.rows[r.key]["completions"]) < n]
        done = len(unique) - len(todo)
        self.progress(label, done, len(unique))
        todo.sort(key=lambda r: (r.stop, r.max_new_tokens or 0, -len(r.prompt)))  # similar lengths batch with less padding
        per_call = max(1, (s.batch_size or DEFAULT_BATCH[self.engine]) // n)  # prompts per generate call, and per append
        start = 0
        while start < len(todo):
            chunk = [r for r in todo[start : start + per_call] if (r.stop, r.max_new_tokens) == (todo[start].stop, todo[start].max_new_tokens)]
            start += len(chunk)
            # Seeded per chunk, so a resumed run draws what an uninterrupted one would for the same chunk.
            seed = int(fingerprint({"seed": s.seed, "key": chunk[0].key}), 16) % 2**31
            sampling = Sampling(s.temperature, s.top_p, chunk[0].max_new_tokens or s.max_new_tokens, tuple(chunk[0].stop), seed)
            prompts = [self.tokenizer.encode(r.prompt, add_special_tokens=False) for r in chunk]
            completions = self.generator.generate(prompts, n, sampling)
            rows = []
            for i, r in enumerate(chunk):
                mine = completions[i * n : (i + 1) * n]
                rows.append({"key": r.key, "prompt": r.prompt, "completions": [c.text for c in mine],
                             "num_tokens": [len(c.token_ids) for c in mine], "finished": [c.finished for c in mine]})
            store.append(rows)
            done += len(chunk)
            self.progress(label, done, len(unique))
        return [store.rows[r.key]["completions"][:n] for r in requests]

    def close(self) -> None:
        import shutil

        if self._verifier is not None:
            self._verifier.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
