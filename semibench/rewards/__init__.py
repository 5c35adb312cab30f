"""Rewards, chosen per sample by the prompt's kind: Math-Verify for math, a judge or an RM for IF."""

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

            self.math = MathVerifier(cfg.math_workers, cfg.math_timeout_s, prediction_extraction=tuple(cfg.math_extraction))
        if "if" in kinds:
            if cfg.if_reward == "reward_model":
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
        return self.instruction(prompts, completions)

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
