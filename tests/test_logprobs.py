"""The sliced log-prob kernel equals the plain log_softmax + gather, values and gradients, in fp32 and bf16."""

import pytest
import torch

from semibench.training import logprobs
from semibench.training.logprobs import sampled_logprobs


def plain(logits, targets):
    x = logits.float()
    logp = x.log_softmax(-1)
    return logp.gather(-1, targets[..., None]).squeeze(-1), -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_log_softmax_gather_with_gradients(dtype, monkeypatch):
    monkeypatch.setattr(logprobs, "SLICE_POSITIONS", 3)  # several slices per row, the last one short
    g = torch.Generator().manual_seed(0)
    logits = (4 * torch.randn(2, 7, 50, generator=g)).to(dtype)
    targets = torch.randint(0, 50, (2, 7), generator=g)
    upstream = torch.randn(2, 7, generator=g)  # a loss that weighs each position differently

    ours = logits.clone().requires_grad_()
    logps, entropy = sampled_logprobs(ours, targets)
    (logps * upstream).sum().backward()
    ref = logits.clone().requires_grad_()
    ref_logps, ref_entropy = plain(ref, targets)
    (ref_logps * upstream).sum().backward()

    assert logps.dtype == entropy.dtype == torch.float32 and ours.grad.dtype == dtype
    torch.testing.assert_close(logps, ref_logps, rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy, ref_entropy, rtol=0, atol=1e-5)
    tol = 1e-6 if dtype == torch.float32 else 1e-2  # the gradient is rounded to the logits' dtype
    torch.testing.assert_close(ours.grad.float(), ref.grad.float(), rtol=0, atol=tol)
    assert not entropy.requires_grad


def test_gradcheck_in_float64():
    logits = torch.randn(2, 5, 11, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (2, 5))
    # the kernel upcasts to fp32: check the analytic gradient against finite differences at fp32 tolerance
    assert torch.autograd.gradcheck(lambda x: sampled_logprobs(x, targets, with_entropy=False)[0].double(), (logits,), eps=1e-3, atol=1e-3, rtol=1e-3)


def test_a_strided_view_of_the_logits_as_the_trainer_passes_them():
    logits = torch.randn(3, 9, 20)
    targets = torch.randint(0, 20, (3, 8))
    logps, entropy = sampled_logprobs(logits[:, :-1], targets, with_entropy=False)
    assert entropy is None
    torch.testing.assert_close(logps, plain(logits[:, :-1], targets)[0], rtol=0, atol=1e-5)
