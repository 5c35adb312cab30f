"""`auto` precision: the capability -> dtype table, and where the resolved dtypes are recorded."""

import json

import pytest

from semibench import config, hardware
from semibench.hardware import Machine, auto_dtype, bf16_units


def cpu(arch: str, features: set[str], onednn_bf16: bool = True, capability: str = "AVX512") -> Machine:
    return Machine("cpu", "test cpu", arch, capability, bf16_units(arch, frozenset(features), onednn_bf16), 2)


# (what the machine is, its feature flags, oneDNN willing to use bf16) -> the dtype `auto` picks
TABLE = [
    ("Sapphire Rapids: AVX512-BF16 and AMX", "x86_64", {"avx2", "avx512_f", "avx512_bf16", "amx_bf16", "amx_tile"}, True, "bfloat16"),
    ("Cooper Lake / Zen 4 / Zen 5: AVX512-BF16", "x86_64", {"avx2", "avx512_f", "avx512_bf16"}, True, "bfloat16"),
    ("AMX without AVX512-BF16 flag reported", "x86_64", {"avx2", "avx512_f", "amx_bf16"}, True, "bfloat16"),
    ("Zen 3: AVX2 only", "x86_64", {"avx", "avx2", "fma3"}, True, "float32"),
    ("Skylake-SP: AVX-512 without BF16", "x86_64", {"avx2", "avx512_f", "avx512_bw", "avx512_vnni"}, True, "float32"),
    ("AVX512-BF16 hardware, oneDNN capped to AVX2", "x86_64", {"avx2", "avx512_f", "avx512_bf16"}, False, "float32"),
    ("Graviton 2 / Neoverse N1: no BF16", "aarch64", {"fp", "asimd", "asimddp"}, True, "float32"),
    ("Graviton 3 / Neoverse V1: BF16", "aarch64", {"fp", "asimd", "sve", "bf16", "svebf16"}, True, "bfloat16"),
    ("Apple M2 (arm64): BF16", "arm64", {"bf16"}, True, "bfloat16"),
    ("an unknown architecture", "riscv64", {"bf16"}, True, "float32"),
]


@pytest.mark.parametrize("what, arch, features, onednn, expected", TABLE, ids=[row[0] for row in TABLE])
def test_capability_to_dtype_table(what, arch, features, onednn, expected):
    assert auto_dtype(cpu(arch, features, onednn)) == expected


@pytest.mark.parametrize("speedup, expected", [(None, "bfloat16"), (2.1, "bfloat16"), (1.2, "bfloat16"), (1.1, "float32"), (0.52, "float32")])
def test_bf16_units_count_only_where_bf16_is_measured_faster(speedup, expected):
    # 2.1: a Zen 4; 0.52: a 2-core Emerald Rapids Xeon without AMX (bf16 178 vs fp32 344 GFLOP/s)
    machine = Machine("cpu", "test cpu", "x86_64", "AVX512", ("AVX512-BF16",), 2, bf16_speedup=speedup)
    assert auto_dtype(machine) == expected
    assert hardware.resolve_autocast("auto", machine) == ("bfloat16" if expected == "bfloat16" else "")


def test_the_speed_measurement_is_made_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMIBENCH_CACHE", str(tmp_path))
    measured = []
    monkeypatch.setattr(hardware, "matmul_gflops", lambda dtype, size, seconds: measured.append(dtype) or {"float32": 344.0, "bfloat16": 178.0}[dtype])
    machine = Machine("cpu", "test cpu", "x86_64", "AVX512", ("AVX512-BF16",), 2)
    assert hardware.cached_bf16_speedup(machine) == 0.517
    assert sorted(measured) == ["bfloat16", "float32"]
    record = json.loads(hardware.speed_cache_path(machine).read_text())
    assert record["gflops"] == {"float32": 344.0, "bfloat16": 178.0}
    # Another process (or a run months later) reads the record instead of measuring again, even if
    # a new measurement would land elsewhere: `auto` and the run ids stay what they were.
    monkeypatch.setattr(hardware, "matmul_gflops", lambda *a: pytest.fail("measured again"))
    assert hardware.cached_bf16_speedup(machine) == 0.517
    # Two processes measuring at once: the first record written is the one both use.
    path = hardware.speed_cache_path(machine)
    path.unlink()
    monkeypatch.setattr(hardware, "matmul_gflops", lambda dtype, size, seconds: path.exists() or path.write_text('{"bf16_speedup": 2.0}') or 1.0)
    assert hardware.cached_bf16_speedup(machine) == 2.0
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_cuda_with_bf16_is_bf16_and_without_is_fp32():
    assert auto_dtype(Machine("cuda", "H200", "sm_90", "sm_90", ("sm_90",), 8)) == "bfloat16"
    assert auto_dtype(Machine("cuda", "V100", "sm_70", "sm_70", (), 1)) == "float32"


def test_autocast_auto_means_none_where_bf16_is_emulated():
    avx2 = cpu("x86_64", {"avx2"}, capability="AVX2")
    amx = cpu("x86_64", {"avx512_bf16", "amx_bf16"})
    assert hardware.resolve_autocast("auto", avx2) == ""
    assert hardware.resolve_autocast("auto", amx) == "bfloat16"
    assert hardware.resolve_dtype("auto", avx2) == "float32"
    # An explicit choice always wins, whatever the machine.
    assert hardware.resolve_dtype("bfloat16", avx2) == "bfloat16"
    assert hardware.resolve_autocast("", amx) == ""


def test_describe_names_the_cpu_its_capability_and_bf16():
    line = cpu("x86_64", {"avx2"}, capability="AVX2").describe()
    assert "test cpu" in line and "AVX2" in line and "bf16 emulated" in line
    assert "AVX512-BF16+AMX" in cpu("x86_64", {"avx512_bf16", "amx_bf16"}).describe()


@pytest.mark.parametrize("native, generator, autocast", [(True, "bfloat16", "bfloat16"), (False, "float32", "")])
def test_config_resolves_auto_records_it_and_the_run_id_takes_it(monkeypatch, native, generator, autocast):
    machine = cpu("x86_64", {"avx512_bf16"} if native else {"avx2"})
    monkeypatch.setattr(hardware, "this_machine", lambda: machine)
    cfg = config.resolve("smol", {"task.name": "mixed"})
    assert (cfg.model.generator_dtype, cfg.model.autocast_dtype, cfg.reward.dtype) == (generator, autocast, generator)
    saved = json.loads(config.to_json(cfg))
    assert saved["model"]["generator_dtype"] == generator and saved["reward"]["dtype"] == generator
    # An explicit user choice wins over auto.
    forced = config.resolve("smol", {"model.generator_dtype": "float32", "model.autocast_dtype": ""})
    assert (forced.model.generator_dtype, forced.model.autocast_dtype) == ("float32", "")


def test_machines_with_different_numerics_get_different_run_ids(monkeypatch):
    from semibench.runs import run_id

    ids = {}
    for name, features in (("bf16", {"avx512_bf16"}), ("fp32", {"avx2"})):
        monkeypatch.setattr(hardware, "this_machine", lambda f=features: cpu("x86_64", f))
        ids[name] = run_id(config.resolve("smol", {"task.name": "math"}))
    assert ids["bf16"] != ids["fp32"]
    # The same numerics reached explicitly give the same id as `auto` on the machine that picks them.
    monkeypatch.setattr(hardware, "this_machine", lambda: cpu("x86_64", {"avx2"}))
    explicit = config.resolve("smol", {"task.name": "math", "model.generator_dtype": "float32", "model.autocast_dtype": "", "reward.dtype": "float32"})
    assert run_id(explicit) == ids["fp32"]


def test_this_machine_is_consistent_with_torch():
    import torch

    m = hardware.this_machine()
    assert m.capability == torch.backends.cpu.get_cpu_capability() or m.device == "cuda"
    assert auto_dtype(m) in ("bfloat16", "float32")


def test_bad_dtype_names_the_choices():
    with pytest.raises(config.ConfigError, match="auto or one of"):
        config.resolve("smol", {"model.generator_dtype": "bf16"})


def test_the_matmul_ceiling_does_not_fall_when_other_processes_take_the_cores():
    """The dry-run estimate divides by this ceiling: timed by the wall clock, a probe at nice 19 beside
    a busy machine read 8x low (the estimate 8x long); timed by CPU time, one thread's rate as its floor,
    it read 0.87 of its idle value (a 2-core Zen 4)."""
    import os
    import subprocess
    import sys

    # Imported at the test's priority; only the measurement runs at nice 19, where the busy processes win.
    probe = [sys.executable, "-c", "import os; from semibench.hardware import matmul_ceiling_gflops, matmul_gflops; matmul_gflops('float32', 256, 0.1); "
             "os.nice(19); print(matmul_ceiling_gflops('float32', 1024, 3.0))"]
    quiet = float(subprocess.run(probe, capture_output=True, text=True, check=True).stdout)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        loaded = float(subprocess.run(probe, capture_output=True, text=True, check=True).stdout)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    print(f"fp32 1024 matmul ceiling at nice 19: {quiet:.0f} GFLOP/s alone, {loaded:.0f} beside {len(spinners)} busy processes")
    assert loaded > 0.5 * quiet  # by the wall clock: ~0.12
