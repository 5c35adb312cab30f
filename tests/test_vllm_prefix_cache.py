"""A run's samples do not depend on what the cached vLLM engine served before it.

The grid scores the seed model, then trains its first run from the same checkpoint on the same engine,
with no weight reload between them. vLLM's prefix cache kept the evaluation's prompt KV (the chat header
every prompt shares), and in bf16 a cache hit is computed along another path than a fresh prefill: a
third of the first run's samples changed, so one run id gave two sets of rollouts in two grids
(docs/pilot.md, DS). SmolLM2 in bf16, where it showed; in fp32 both paths computed the same KV.
One SmolLM2 engine start (~40 s), so `slow`.
"""

import pytest
import torch

pytest.importorskip("vllm")

from semibench.engines import load_generator  # noqa: E402
from semibench.engines.base import Sampling  # noqa: E402
from semibench.engines.vllm import close_engines  # noqa: E402
from semibench.hardware import this_machine  # noqa: E402
from semibench.models import load_tokenizer, resolve_model  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not this_machine().native_bf16, reason="bf16 generation needs a CPU with bf16 units (fp32 showed no difference)")
def test_a_new_generator_on_a_cached_engine_samples_as_on_a_fresh_one(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the engine's IPC files land here
    path = resolve_model("smollm2")
    tok = load_tokenizer(path)

    def chat(text: str) -> list[int]:
        return tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, return_dict=False)

    train_prompts = [chat(f"Calculate {a} + {b}. Put the final answer in \\boxed{{}}.") for a, b in [(8, 2), (13, 29), (40, 7), (5, 66)]]
    eval_prompts = [chat(f"Write a short poem about {w}. Finish with 'That is all.'") for w in ["rain", "a cat", "numbers", "trains", "tea", "snow"]]
    rollout = Sampling(temperature=1.0, max_new_tokens=48, seed=11)
    try:
        scorer = load_generator(path, "vllm", torch.bfloat16)
        fresh = scorer.generate(train_prompts, 4, rollout)
        scorer.generate(eval_prompts + train_prompts, 2, Sampling(temperature=0.6, top_p=0.9, max_new_tokens=48, seed=3))
        run = load_generator(path, "vllm", torch.bfloat16)  # the next run's generator: same checkpoint, so no reload
        assert run.worker is scorer.worker and run.last_sync is None
        again = run.generate(train_prompts, 4, rollout)
    finally:
        close_engines()
    assert [c.token_ids for c in again] == [c.token_ids for c in fresh]
    assert [c.logprobs for c in again] == [c.logprobs for c in fresh]
