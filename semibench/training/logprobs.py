"""Log-probs of the sampled tokens (and next-token entropies) from [B, T, V] logits, a slice at a time.

The plain way, `log_softmax(logits.float()).gather(...)`, materialises several fp32 [B, T, V] tensors:
the upcast, the log-softmax, its exp for the entropy, and autograd keeps the upcast for backward.
For a smol step (16 rows x 129 positions x 49,152 tokens) each is 406 MB, so a step made and freed
gigabytes and spent a fifth of its time in memory-bound passes over them. Here each slice of
`SLICE_POSITIONS` positions is upcast, reduced to its log-sum-exp, the target's log-prob and the
entropy, and dropped; backward recomputes the slice's softmax from the logits and the saved
log-sum-exp. Only the logits (in their own dtype) and [B, T] vectors are kept.
"""

from __future__ import annotations

import torch
from torch import Tensor

SLICE_POSITIONS = 64  # 64 x 49,152 fp32 = 12.6 MB a slice: big enough to vectorise, small enough to stay out of the page allocator


def slices(batch: int, positions: int, step: int = SLICE_POSITIONS):
    for b in range(batch):
        for t in range(0, positions, step):
            yield b, slice(t, min(t + step, positions))


class SampledLogProbs(torch.autograd.Function):
    """(logits [B, T, V], targets [B, T]) -> (log p(target) [B, T], entropy [B, T]), both fp32.

    Differentiable in the log-probs only: the entropy is a metric here (an entropy loss term takes
    `token_entropy` on the full logits instead)."""

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, with_entropy: bool = True):
        batch, positions, _ = logits.shape
        logps = torch.empty((batch, positions), dtype=torch.float32, device=logits.device)
        entropy, lse = torch.full_like(logps, float("nan")), torch.empty_like(logps)
        for b, t in slices(batch, positions):
            x = logits[b, t].float()
            lse[b, t] = x.logsumexp(-1)
            logps[b, t] = x.gather(-1, targets[b, t, None]).squeeze(-1) - lse[b, t]
            if not with_entropy:
                continue
            probs = (x - lse[b, t, None]).exp_()
            entropy[b, t] = lse[b, t] - (probs * x).sum(-1)
        ctx.save_for_backward(logits, targets, lse)
        ctx.mark_non_differentiable(entropy)
        return logps, entropy

    @staticmethod
    def backward(ctx, grad_logps: Tensor, _grad_entropy: Tensor | None):
        logits, targets, lse = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for b, t in slices(*logits.shape[:2]):
            # d log p(y) / d x = onehot(y) - softmax(x)
            g = (logits[b, t].float() - lse[b, t, None]).exp_().mul_(-grad_logps[b, t, None])
            g.scatter_add_(-1, targets[b, t, None], grad_logps[b, t, None])
            grad[b, t] = g
        return grad, None, None


def sampled_logprobs(logits: Tensor, targets: Tensor, with_entropy: bool = True) -> tuple[Tensor, Tensor | None]:
    """fp32 log-probs of `targets` under `logits` and, if asked, each position's entropy (no gradient)."""
    logps, entropy = SampledLogProbs.apply(logits, targets, with_entropy)
    return logps, entropy if with_entropy else None
