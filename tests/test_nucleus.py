"""The engine's sort-free top-p keeps exactly vLLM's nucleus (vLLM's own function is the reference)."""

import pytest
import torch

from semibench.engines.nucleus import top_p_filter

sampler = pytest.importorskip("vllm.v1.sample.ops.topk_topp_sampler")


def vllm_top_p(logits, p):
    return sampler.apply_top_k_top_p_pytorch(logits.clone(), None, p)


@pytest.mark.parametrize("temperature", [0.3, 0.6, 1.0, 3.0])
def test_same_nucleus_as_vllm_on_peaked_and_flat_rows(temperature):
    g = torch.Generator().manual_seed(0)
    vocab = 49152
    # fp32 logits (no ties), shaped like a language model's: a few likely tokens over a long tail
    logits = torch.randn(24, vocab, generator=g) * 2.0 / temperature
    logits[:12, :5] += 12.0 / temperature  # peaked rows: the nucleus fits in the candidates
    p = torch.tensor([0.9, 0.5, 0.95, 0.999, 0.1, 1.0] * 4)
    ours = top_p_filter(logits.clone(), p, sampler.apply_top_k_top_p_pytorch, candidates=256)
    theirs = vllm_top_p(logits, p)
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    kept = ~torch.isinf(ours)
    assert torch.equal(ours[kept], logits[kept])  # kept tokens keep their logits
    if temperature >= 1.0:
        assert kept[12:].sum(-1).max() > 256  # flat rows took the full-sort path, and still agree


def test_bf16_logits_keep_whole_ties_and_the_same_mass():
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(8, 4096, generator=g) * 3).to(torch.bfloat16)
    p = torch.full((8,), 0.9)
    ours = top_p_filter(logits.clone(), p, sampler.apply_top_k_top_p_pytorch)
    kept = ~torch.isinf(ours)
    probs = logits.float().softmax(-1)
    mass = (probs * kept).sum(-1)
    assert (mass >= 0.9 - 1e-4).all()  # the nucleus reaches p ...
    threshold = ours.masked_fill(~kept, float("inf")).amin(-1, keepdim=True)
    assert torch.equal(kept, logits >= threshold)  # ... is every token at or above its least likely member (ties whole) ...
    without_last = mass - probs.masked_fill(~(logits == threshold), 0).sum(-1)
    assert (without_last < 0.9 + 1e-4).all()  # ... and dropping the boundary's tokens would fall short: minimal


def test_install_routes_vllms_sampler_through_the_filter_only_for_top_p_alone(monkeypatch):
    from semibench.engines import nucleus

    monkeypatch.setattr(sampler, "apply_top_k_top_p", sampler.apply_top_k_top_p)  # restored after the test
    original = sampler.apply_top_k_top_p
    nucleus.install()
    nucleus.install()  # idempotent: one wrapper, not two
    routed = sampler.apply_top_k_top_p
    assert routed is not original and routed.semibench_nucleus
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 4096, generator=g) * 3
    p = torch.tensor([0.9, 0.5, 0.99, 0.2])
    assert torch.equal(torch.isinf(routed(logits.clone(), None, p)), torch.isinf(vllm_top_p(logits, p)))
    k = torch.tensor([5, 5, 5, 5])
    assert torch.equal(routed(logits.clone(), k, p), original(logits.clone(), k, p))  # top-k goes to vLLM's own
