"""Rewards, chosen per sample by the prompt's kind: Math-Verify for math; for IF a judge, an RM or the prompt's own constraints."""

from __future__ import annotations

from typing import Sequence

from semibench.config import RewardConfig


class Rewarder:
    """Scores completions; builds only the scorers the task's prompt kinds need."""

    def __init__(self, cfg: RewardConfig, kinds: Sequence[str], judge_template: str = ""):
        from semibench.hardware import torch_dtype

        self.math = None
        self.instruction = None
        if "math" in kinds:
            from semibench.rewards.math import MathVerifier

            self.math = MathVerifier(cfg.math_workers, cfg.math_timeout_s, prediction_extraction=tuple(cfg.math_extraction),
                                     literal_numbers=cfg.math_literal_numbers)
        self.binary_if = cfg.if_reward == "constraints"  # pass/fail per prompt, like Math-Verify
        if "if" in kinds:
            if cfg.if_reward == "constraints":
                from semibench.rewards.constraints import ConstraintReward

                self.instruction = ConstraintReward()
            elif cfg.if_reward == "reward_model":
                from semibench.rewards.reward_model import ScalarRewardModel

                self.instruction = ScalarRewardModel(cfg.reward_model, cfg.rm_cls_token, cfg.rm_max_length, cfg.rm_batch_size, torch_dtype(cfg.dtype), device=cfg.rm_device)
            else:
                from semibench.rewards.judge import PointwiseJudge

                self.instruction = PointwiseJudge(cfg.judge_model, judge_template, dtype=torch_dtype(cfg.dtype))

    def __call__(self, kinds: Sequence[str], prompts: Sequence[str], golds: Sequence[str | None], completions: Sequence[str]) -> list[float]:
        """One reward per completion; entries are aligned (kind, prompt text, gold, completion)."""
        rewards = [0.0] * len(completions)
        for kind, scorer in (("math", self._score_math), ("if", self._score_instruction)):
            rows = [i for i, k in enumerate(kinds) if k == kind]
            if rows:
                for i, r in zip(rows, scorer([prompts[i] for i in rows], [golds[i] for i in rows], [completions[i] for i in rows])):
                    rewards[i] = float(r)
        return rewards

    def _score_math(self, prompts, golds, completions) -> list[float]:
        return self.math(completions, golds)

    def _score_instruction(self, prompts, golds, completions) -> list[float]:
        if self.binary_if:
            return self.instruction(golds, completions)
        return self.instruction(prompts, completions)

    def is_binary(self, kind: str) -> bool:
        """Whether this kind's reward is pass/fail (DPO then pairs a random pass with a random fail)."""
        return kind == "math" or (kind == "if" and self.binary_if)

    def close(self) -> None:
        if self.math is not None:
            self.math.close()


def length_normalized_reward(rewards: Sequence[float], lengths: Sequence[int]) -> float:
    """Mean reward / mean rollout length in tokens: the paper's chat checkpoint-selection metric.

    Athene-RM favours longer answers, so the paper picks IF checkpoints by this instead of the raw
    reward (paper.md §1.8; fairseq2 logs it as `avg_reward_len_norm` on n=1 validation rollouts).
    A ratio of means, not a mean of ratios, as that code computes it.
    """
    if not rewards or len(rewards) != len(lengths):
        raise ValueError(f"need one length per reward, got {len(rewards)} rewards and {len(lengths)} lengths")
    return (sum(rewards) / len(rewards)) / max(sum(lengths) / len(lengths), 1.0)


def check_prompts(cfg: RewardConfig, pools: dict) -> None:
    """Fail before anything is trained or written when a prompt cannot be rewarded: under the constraint
    reward, an IF prompt whose row carries no constraints (one line naming the row)."""
    if cfg.if_reward != "constraints":
        return
    from semibench.constraints import parse_spec

    for i, prompt in enumerate(pools.get("if", [])):
        parse_spec(prompt.gold, f"IF prompt {i} ({prompt.source})")
