"""The shared-memory weight layout a vLLM sync writes through (no engine needed)."""

import os

import pytest
import torch

from semibench.engines.vllm import WeightLayout
from semibench.engines.vllm_worker import shared_views
from semibench.sync import WeightSyncError


def _state():
    torch.manual_seed(0)
    embed = torch.randn(8, 4)
    return {"model.embed_tokens.weight": embed, "model.layers.0.w": torch.randn(4, 4), "lm_head.weight": embed}  # tied head


def test_write_converts_into_views_the_engine_process_sees():
    layout = WeightLayout([("model.embed_tokens.weight", (8, 4)), ("model.layers.0.w", (4, 4))], torch.bfloat16, 1 << 20)
    state = _state()
    layout.write(state)  # the tied lm_head alias is accepted and not stored twice
    other = shared_views(layout.path, layout.layout, layout.nbytes)  # a second mapping, as the engine has
    for name, view in other.items():
        assert view.dtype == torch.bfloat16 and torch.equal(view, state[name].to(torch.bfloat16))
    assert layout.buckets == [["model.embed_tokens.weight", "model.layers.0.w"]]  # 96 bytes: one bucket


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.pop("model.layers.0.w"), "1 missing \\(e.g. model.layers.0.w\\)"),
    (lambda s: s.__setitem__("model.layers.0.w", torch.zeros(4, 5)), "another shape"),
    (lambda s: s.__setitem__("model.layers.9.w", torch.zeros(1)), "1 unknown \\(e.g. model.layers.9.w\\)"),
])
def test_a_state_that_does_not_match_is_refused_before_any_copy(edit, message):
    layout = WeightLayout([("model.embed_tokens.weight", (8, 4)), ("model.layers.0.w", (4, 4))], torch.float32, 1 << 20)
    before = {k: v.clone() for k, v in layout.views.items()}
    state = _state()
    edit(state)
    with pytest.raises(WeightSyncError, match=message):
        layout.write(state)
    assert all(torch.equal(before[k], v) for k, v in layout.views.items())


def test_the_engine_does_not_inherit_torchrun_ranks_or_its_one_thread():
    from semibench.engines.vllm import engine_environment

    torchrun = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500",
                "TORCHELASTIC_RUN_ID": "x", "OMP_NUM_THREADS": "1", "PATH": "/bin"}
    env = engine_environment(torchrun)
    assert not {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"} & env.keys()
    assert env["PATH"] == "/bin" and env["OMP_NUM_THREADS"] == str(os.cpu_count())
    assert engine_environment({**torchrun, "SEMIBENCH_ENGINE_THREADS": "3"})["OMP_NUM_THREADS"] == "3"


def test_compiled_kernels_are_cached_per_isa_so_a_capped_run_never_feeds_a_native_one(tmp_path):
    from semibench.engines.vllm import engine_environment
    from semibench.hardware import Machine

    zen4 = Machine("cpu", "AMD EPYC family 25 model 17", "x86_64", "AVX512", ("AVX512-BF16",), 2)
    capped = Machine("cpu", "AMD EPYC family 25 model 17", "x86_64", "AVX2", (), 2)  # ATEN_CPU_CAPABILITY=avx2
    shared = {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}
    native_dir = engine_environment(shared, zen4)["TORCHINDUCTOR_CACHE_DIR"]
    capped_dir = engine_environment(shared, capped)["TORCHINDUCTOR_CACHE_DIR"]
    assert native_dir != capped_dir and {os.path.dirname(native_dir), os.path.dirname(capped_dir)} == {str(tmp_path)}
    assert "/" not in os.path.basename(native_dir) and "AVX512" in native_dir
    # an engine started from inside an engine's environment keeps the same directory, not one more level
    assert engine_environment({"TORCHINDUCTOR_CACHE_DIR": native_dir}, zen4)["TORCHINDUCTOR_CACHE_DIR"] == native_dir
