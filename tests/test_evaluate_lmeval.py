"""semibench's GSM8K and IFEval equal lm-eval's own `simple_evaluate` with its `hf` backend on the same checkpoint.

Same task YAMLs (tasks/eval/, local data), greedy, zero-shot chat, one prompt at a time on both sides
(batch 1: no padding, so both run the very same fp32 forward passes). Completions must match text for
text and every metric value must match.
"""

import pytest

from semibench import constraints
from semibench.benchmarks import BENCHMARKS
from semibench.evals import lmeval
from semibench.evals.evaluate import evaluate
from semibench.evals.settings import EvalSettings
from semibench.models import resolve_model

MAX_NEW_TOKENS = 48


@pytest.fixture(autouse=True)
def _hf_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


def _lm_eval_reference(model_dir: str, data_dir, scratch, limit: int) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    constraints.prepare()
    return lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": model_dir, "dtype": "float32"}, device="cpu", batch_size=1,
        tasks=["semibench_gsm8k", "semibench_ifeval"], task_manager=TaskManager(include_path=str(lmeval.render_local_tasks(data_dir, scratch))),
        limit=limit, num_fewshot=0, apply_chat_template=True, fewshot_as_multiturn=False,
        gen_kwargs={"max_gen_toks": MAX_NEW_TOKENS}, log_samples=True, bootstrap_iters=0,
    )


def _compare(model: str, shared_data, tmp_path, limit: int) -> None:
    settings = EvalSettings(max_new_tokens=MAX_NEW_TOKENS, limit=limit, data_dir=shared_data, dtype="float32", batch_size=1, engine="hf")
    ours = evaluate(model, ["gsm8k", "ifeval"], settings, out_dir=tmp_path / "ours")
    ref = _lm_eval_reference(resolve_model(model), shared_data, tmp_path / "tasks", limit)
    for bench, task in (("gsm8k", "semibench_gsm8k"), ("ifeval", "semibench_ifeval")):
        spec = BENCHMARKS[bench].lmeval
        got = ours[bench]
        assert got["n"] == limit
        for key in spec.metrics:
            name = key.split(",")[0] if key.endswith(",none") else key.replace(",", "_").replace("-", "_")
            assert got["metrics"][name] == pytest.approx(100 * ref["results"][task][key], abs=1e-9), (bench, key)
        assert got["score"] == pytest.approx(100 * ref["results"][task][spec.metrics[0]], abs=1e-9)
        import json

        rows = [json.loads(line) for line in (tmp_path / "ours" / f"{bench}.samples.jsonl").read_text().splitlines()]
        theirs = {s["doc_id"]: s["resps"][0][0] for s in ref["samples"][task]}
        assert {r["doc_id"]: r["completions"][0] for r in rows} == theirs


def test_tiny_matches_lm_eval_hf_backend(shared_data, tmp_path):
    _compare("tiny", shared_data, tmp_path, limit=4)


@pytest.mark.slow
def test_smollm2_matches_lm_eval_hf_backend(shared_data, tmp_path):
    _compare("smollm2", shared_data, tmp_path, limit=3)
