"""A micro-batch's forward: the sampled tokens' log-probs (and entropies) of packed rollouts.

Pure tensor work on a `rollouts.TokenBatch`, shared by the policy, the reference and the window
model in `step.train_step`, and by the tests that compare it with the generator's log-probs.
"""

from __future__ import annotations

import dataclasses

import torch

from semibench.training import losses, rollouts
from semibench.training.logprobs import sampled_logprobs


def forward_logps(model, batch: rollouts.TokenBatch, with_entropy: bool = False, entropy_grad: bool = False):
    """Token log-probs of the (right-aligned) completion tokens: [B, T], and their entropies [B, T].

    The entropy is a [B, T, V] computation: with a gradient only when a loss term uses it
    (`entropy_grad`: then on full fp32 logits), else a metric computed beside the log-probs.
    """
    num_completion = batch.completion_mask.shape[1]
    cache, attention_mask = None, batch.attention_mask
    if batch.shared_prompts is not None:  # the distinct prompts first, once; their KV (and its gradient path) per row
        shared = batch.shared_prompts
        cache = model(input_ids=shared.input_ids, attention_mask=shared.attention_mask, position_ids=shared.position_ids,
                      use_cache=True, logits_to_keep=1).past_key_values
        rows_of_prompts(cache, shared.row_prompt)
        attention_mask = torch.cat([shared.attention_mask[shared.row_prompt], batch.attention_mask], dim=1)
    logits = model(
        input_ids=batch.input_ids,
        attention_mask=attention_mask,
        position_ids=batch.position_ids,
        past_key_values=cache,
        logits_to_keep=num_completion + 1,
        # A cache only to attend to the shared prompts; none otherwise (a recomputed, checkpointed block must not append to one).
        use_cache=cache is not None,
    ).logits[:, :-1]  # position t predicts token t + 1
    targets = batch.input_ids[:, -num_completion:]
    if not (with_entropy and entropy_grad):  # a slice at a time, never a vocab-sized fp32 tensor (logprobs.py)
        return sampled_logprobs(logits, targets, with_entropy)
    logits = logits.float()
    logps = logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)
    return logps, losses.token_entropy(logits)


def rows_of_prompts(cache, row_prompt: torch.Tensor) -> None:
    """Give every row its prompt's KV: row b gets prompt row_prompt[b]'s, in place, in every layer.

    `index_select`, whose backward adds each row's gradient into its prompt in index order, and not
    the cache's own `batch_select_indices` (advanced indexing): with repeated indices that backward
    adds with atomics in whatever order the threads reach them, so the gradient, and so identical
    runs, differed in the last bits (test_identical_runs_identical_metrics caught it on 2 threads).
    """
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, row_prompt)
        layer.values = layer.values.index_select(0, row_prompt)


def to_device(batch: rollouts.TokenBatch, device: torch.device) -> rollouts.TokenBatch:
    if device.type == "cpu":
        return batch

    def tensors_to(obj):  # a dataclass of tensors
        tensors = {f.name: getattr(obj, f.name).to(device) for f in dataclasses.fields(obj) if f.name != "shared_prompts"}
        return dataclasses.replace(obj, **tensors)

    return dataclasses.replace(tensors_to(batch), shared_prompts=batch.shared_prompts and tensors_to(batch.shared_prompts))
