"""One optimizer step: the step's units -> micro-batches -> forward, the configured objective, backward
-> clip -> update, and the step's metrics. The loop that calls it is train.py; the units and their
micro-batches come from rollouts.py, a micro-batch's forward from forward.py, the losses from losses.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import torch

from semibench.config import LossConfig, RunConfig
from semibench.engines.base import Completion
from semibench.training import dist, losses, rollouts
from semibench.training.forward import forward_logps, to_device


class Diverged(Exception):
    """A non-finite gradient norm in train_step: its update is not taken; train() stops the run with one line."""

    def __init__(self, grad_norm: float, losses_seen: dict[str, float]):
        self.grad_norm, self.losses_seen = grad_norm, losses_seen
        super().__init__(f"grad_norm={grad_norm}")


@dataclass
class Models:
    policy: torch.nn.Module  # sharded (FSDP2) under torchrun
    reference: torch.nn.Module  # sharded alike, frozen
    tokenizer: object
    autocast: Callable[[], contextlib.AbstractContextManager]
    path: str  # the resolved checkpoint both were loaded from (the generator loads its own copy)
    window: torch.nn.Module | None = None  # frozen, holds the sync window's weights when neither policy nor reference does (`keeps_window_model`)


# Per-micro-batch token means; the step reports them as means over all its tokens (on all ranks),
# so they do not depend on micro_batch_size or the number of ranks.
TOKEN_MEANS = ("logit_entropy", "kl", "mismatch_kl", "mismatch_kl_engine", "mismatch_kl_lag", "tis_weight")


def train_step(cfg: RunConfig, models: Models, optimizer, prompt_ids, completions: list[Completion], grid, binary, rng, world: dist.World = dist.World(),
               window_model: torch.nn.Module | None = None, kinds: list[str] | None = None) -> dict:
    """Accumulate gradients over the step's units in micro-batches, clip, update. Returns metrics.

    Every rank builds the same global units (rollouts.step_units) and trains a contiguous slice of
    them. Each loss term (a pair, or a GRPO sample) is divided by the step's number of terms and
    gradients are summed across ranks, so the update is the one-process update up to float summation
    order. `num_units` in the metrics counts those terms.

    Off-policy diagnostics on the trained rows: `mismatch_kl` (generator vs policy) splits into
    `mismatch_kl_engine` (generator vs `window_model`, the trainer on the weights the generator
    served: the engine's numerics) and `mismatch_kl_lag` (the window's weights vs the policy: the
    staleness). `window_model` None means the policy is the window's weights (lag exactly 0); the
    reference costs no extra forward (its log-probs are computed anyway). `is_ess`: the normalised
    effective sample size of the completions' importance weights pi_policy / pi_generator.
    `kinds` (mixed runs): each prompt's kind, for `frac_valid_prompts/<kind>`.
    """
    plan = rollouts.step_units(cfg.loss.objective, grid, binary, rng, cfg.loss.grpo_scale_std)
    units = plan.units
    num_terms = plan.num_terms  # GRPO samples or pairs: the step's loss is their mean
    metrics = {"frac_valid_prompts": plan.frac_valid_prompts, "num_units": num_terms, "skipped": int(not units)}
    if kinds is not None:
        metrics |= {f"frac_valid_prompts/{k}": v for k, v in rollouts.frac_valid_by_kind(units, kinds, len(grid[0]) if grid else 1).items()}
    if not units:
        return metrics  # nothing to learn from this step: no update, no fake zero-loss step
    versions = [completions[i].version for unit in units for i in unit]
    metrics["generator_version_min"], metrics["generator_version_max"] = min(versions), max(versions)

    optimizer.zero_grad(set_to_none=True)
    shapes = rollouts.unit_shapes(units, prompt_ids, completions)
    # Each distinct prompt runs once (rollouts.SharedPrompts). Not under FSDP: it reshards a block after each
    # forward, and a backward through two forwards of one block finds its weights freed. Not under activation
    # checkpointing: a recomputed block would append to the prompts' cache.
    share_prompts = not world.sharded and not cfg.dist.activation_checkpointing and min(len(p) for p in prompt_ids) >= 2

    def rank_chunks(rank: int) -> list[list[rollouts.Unit]]:  # a rank's slice of the units, in micro-batches of similar length
        mine = dist.shard_range(len(units), dataclasses.replace(world, rank=rank))
        return rollouts.micro_batches([units[i] for i in mine], [shapes[i] for i in mine], cfg.train.micro_batch_size, share_prompts)

    chunks = rank_chunks(world.rank)
    # FSDP gathers each block's weights in every forward, so all ranks run as many micro-batches as
    # the busiest one (every rank can work that out); a rank short of units runs zero-weighted ones
    # (collectives, zero gradient).
    num_micro = max(len(rank_chunks(rank)) for rank in range(world.size))
    sums: dict[str, float] = {}
    log_ratios: dict[int, float] = {}  # flat sample index -> log(pi_policy / pi_generator) of the completion (a sample may sit in several units)
    for k in range(num_micro):
        chunk, weight = (chunks[k], plan.terms(chunks[k]) / num_terms) if k < len(chunks) else (units[:1], 0.0)
        batch = to_device(rollouts.pack_units(chunk, prompt_ids, completions, models.tokenizer.pad_token_id, share_prompts), world.device)
        with models.autocast():
            logps, entropy = forward_logps(models.policy, batch, with_entropy=True, entropy_grad=bool(cfg.loss.entropy_coef))
            with torch.no_grad():
                ref_logps, _ = forward_logps(models.reference, batch)
                if window_model is None:
                    window_logps = logps.detach()
                elif window_model is models.reference:
                    window_logps = ref_logps
                else:  # every rank, zero-weighted micro-batches too: a sharded forward is a collective
                    window_logps, _ = forward_logps(window_model, batch)
        mask = batch.completion_mask
        loss, m = unit_loss(cfg.loss, loss_inputs(plan, chunk, batch, logps, ref_logps, entropy))
        (loss * weight).backward()  # micro-batch mean -> its share of the global step mean
        if not weight:
            continue
        with torch.no_grad():
            m["logit_entropy"] = ((entropy * mask).sum() / mask.sum().clamp(min=1)).item()
            m["kl"] = (losses.k3_kl(logps, ref_logps, mask).sum() / mask.sum().clamp(min=1)).item()
            m["mismatch_kl"] = losses.mismatch_kl(logps, batch.generator_logps, mask)
            m["mismatch_kl_engine"] = losses.mismatch_kl(window_logps, batch.generator_logps, mask)
            m["mismatch_kl_lag"] = 0.0 if window_model is None else losses.mismatch_kl(logps, window_logps, mask)
            seq_ratios = losses.sequence_log_ratios(logps.detach().float(), batch.generator_logps, mask).tolist()
            for row, value in zip(rollouts.unit_rows(chunk), seq_ratios):
                log_ratios.setdefault(row, value)
            num_tokens = float(mask.sum())
        for key, v in m.items():
            sums[key] = sums.get(key, 0.0) + v * (num_tokens if key in TOKEN_MEANS else plan.terms(chunk))
        sums["completion_tokens"] = sums.get("completion_tokens", 0.0) + num_tokens
        sums["train_tokens"] = sums.get("train_tokens", 0.0) + float(batch.num_tokens)
    grad_norm = dist.clip_grad_norm_(models.policy.parameters(), cfg.optim.grad_clip)
    if not math.isfinite(grad_norm):  # the global norm: every rank takes the same branch
        losses_seen = {k: v for k, v in sums.items() if k.endswith("_loss")}
        raise Diverged(grad_norm, losses_seen)
    optimizer.step()
    sums = dist.sum_across(sums, world)
    gathered = dict(dist.gather_lists(sorted(log_ratios.items()), world))  # a sample's units may sit on several ranks
    metrics["is_ess"] = losses.importance_ess(torch.tensor([gathered[i] for i in sorted(gathered)], dtype=torch.float64))
    num_tokens = max(sums.pop("completion_tokens"), 1.0)
    train_tokens = sums.pop("train_tokens")
    metrics |= {k: v / (num_tokens if k in TOKEN_MEANS else num_terms) for k, v in sums.items()}
    metrics["train_tokens"] = train_tokens
    metrics["grad_norm"] = grad_norm
    if plan.pairs is not None:
        pairs = plan.flat_pairs()
        metrics["chosen_length"] = sum(len(completions[c].token_ids) for c, _ in pairs) / len(pairs)
        metrics["rejected_length"] = sum(len(completions[r].token_ids) for _, r in pairs) / len(pairs)
    return metrics


def loss_inputs(plan: rollouts.StepUnits, chunk: list[rollouts.Unit], batch: rollouts.TokenBatch, logps: torch.Tensor, ref_logps: torch.Tensor,
                entropy: torch.Tensor | None) -> losses.LossInputs:
    """A micro-batch's tensors, its pairs' rows and its rows' GRPO advantages and weights (`chunk`: its units)."""
    def per_row(values: list[float] | None) -> torch.Tensor | None:
        return None if values is None else torch.tensor(values, dtype=logps.dtype, device=logps.device)

    chosen = rejected = None
    if plan.pairs is not None:
        chosen, rejected = (torch.tensor(rows, device=logps.device) for rows in plan.pair_rows(chunk))
    return losses.LossInputs(logps, ref_logps, batch.generator_logps, batch.completion_mask, entropy,
                             advantages=per_row(plan.row_advantages(rollouts.unit_rows(chunk))), grpo_weights=per_row(plan.row_grpo_weights(chunk)),
                             chosen=chosen, rejected=rejected)


def unit_loss(loss_cfg: LossConfig, inputs: losses.LossInputs) -> tuple[torch.Tensor, dict[str, float]]:
    """The configured objective on one micro-batch: its mean over the micro-batch's units, and metrics."""
    lc, x = loss_cfg, inputs
    if lc.objective == "grpo":
        loss, m = losses.grpo_loss(x.logps, x.ref_logps, x.generator_logps, x.advantages, x.mask, lc.kl_beta, lc.length_normalize, lc.tis_cap)
    else:
        seq = losses.sequence_logps(x.logps, x.mask, lc.length_normalize)
        ref_seq = losses.sequence_logps(x.ref_logps, x.mask, lc.length_normalize)
        c, r = x.chosen, x.rejected  # a GroupDPO sample is one row, read by each of its pairs
        loss, m = losses.dpo_loss(seq[c], seq[r], ref_seq[c], ref_seq[r], lc.dpo_beta)
        if lc.nll_coef:
            nll = losses.nll_loss(x.logps[c], x.mask[c])
            loss = loss + lc.nll_coef * nll
            m["nll_loss"] = nll.item()
        if lc.objective == "group_dpo_grpo":
            # Every row (a distinct sample) also carries its GRPO advantage; grpo_weights turn the
            # micro-batch's share of the pairs into its share of the samples (rollouts.StepUnits).
            grpo, gm = losses.grpo_loss(x.logps, x.ref_logps, x.generator_logps, x.advantages, x.mask, lc.kl_beta, lc.length_normalize,
                                        lc.tis_cap, row_weights=x.grpo_weights)
            loss = loss + lc.grpo_alpha * grpo
            m |= gm
    if lc.entropy_coef:
        scored = slice(None) if lc.objective == "grpo" else x.chosen  # DPO: on the chosen, as the paper's code
        mean_entropy = (x.entropy[scored] * x.mask[scored]).sum(-1) / x.mask[scored].sum(-1).clamp(min=1)
        loss = loss - lc.entropy_coef * mean_entropy.mean()
    return loss, m
