"""Pointwise LLM judge: reward = expected rating under the judge's distribution over "1".."9".

One forward pass per (instruction, response), the tokens a prompt's samples share run once: the
judge's next-token log-probs at the answer slot, restricted to the nine rating tokens and
renormalised, give E[rating]; the reward is rescaled to [0, 1]. A graded score, so best-vs-worst
DPO pairs and GRPO advantages exist even when a weak judge would always answer the same digit.
The packaged SmolLM2-135M is a weak judge; real runs pass a reward model
(`reward.if_reward=reward_model`) or a strong judge.
"""

from __future__ import annotations

from typing import Sequence

import torch

from semibench.engines.base import left_pad
from semibench.models import load_causal_lm, load_tokenizer, resolve_model

RATINGS = [str(d) for d in range(1, 10)]
ANSWER_PREFIX = "Rating: "  # primes the assistant turn so the next token is the rating


class PointwiseJudge:
    def __init__(self, model_name: str, template: str, batch_size: int = 8, max_length: int = 2048, dtype: torch.dtype | None = None):
        from semibench.hardware import torch_dtype

        dtype = dtype or torch_dtype("auto")
        path = resolve_model(model_name)
        self.tokenizer = load_tokenizer(path)
        self.model = load_causal_lm(path, dtype).requires_grad_(False)
        self.template = template
        self.batch_size = batch_size
        self.max_length = max_length
        self.rating_ids = []
        for rating in RATINGS:
            ids = self.tokenizer.encode(rating, add_special_tokens=False)
            if len(ids) != 1:
                raise ValueError(f"judge {model_name}: rating {rating!r} is not a single token; pick another judge")
            self.rating_ids.append(ids[0])
        self.num_truncated = 0

    def _encode(self, instruction: str, response: str) -> list[int]:
        messages = [{"role": "user", "content": self.template.format(instruction=instruction, response=response)}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + ANSWER_PREFIX
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) > self.max_length:
            # Keep the end: the rating instruction and the answer slot must survive truncation.
            self.num_truncated += 1
            ids = ids[-self.max_length :]
        return ids

    @torch.no_grad()
    def __call__(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        encoded = [self._encode(i, r) for i, r in zip(instructions, responses)]
        scores = [0.0] * len(encoded)
        for rows in instruction_groups(instructions, self.batch_size):
            for row, score in zip(rows, self._score_group([encoded[r] for r in rows])):
                scores[row] = score
        return scores

    def _score_group(self, encoded: list[list[int]]) -> list[float]:
        """Rewards of rows that share their start (chat header, template head, instruction): the shared
        tokens run once and their KV is repeated for every row (GRPO's and DPO's samples of a prompt
        share ~40% of the judge's tokens). Suffixes are padded in the middle, between the prefix and
        each row's own tokens, so every row's rating slot is the last position."""
        shared = min(common_prefix_length(encoded), min(len(ids) for ids in encoded) - 1)  # >= 1 own token per row
        pad = self.tokenizer.pad_token_id
        cache = None
        if shared:
            cache = self.model(input_ids=torch.tensor([encoded[0][:shared]]), use_cache=True).past_key_values
            cache.batch_repeat_interleave(len(encoded))
        suffix_ids, suffix_mask = left_pad([ids[shared:] for ids in encoded], pad)
        attention = torch.cat([torch.ones(len(encoded), shared, dtype=suffix_mask.dtype), suffix_mask], dim=1)
        position_ids = shared + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(input_ids=suffix_ids, attention_mask=attention, position_ids=position_ids, past_key_values=cache,
                            use_cache=cache is not None, logits_to_keep=1).logits[:, -1]
        probs = logits.float()[:, self.rating_ids].softmax(-1)  # [B, 9]
        expected = (probs * torch.arange(1, 10, dtype=torch.float32)).sum(-1)
        return ((expected - 1) / 8).tolist()


def instruction_groups(instructions: Sequence[str], size: int) -> list[list[int]]:
    """Row indices grouped by instruction (first-seen order), at most `size` rows per group."""
    by_instruction: dict[str, list[int]] = {}
    for row, instruction in enumerate(instructions):
        by_instruction.setdefault(instruction, []).append(row)
    return [rows[start : start + size] for rows in by_instruction.values() for start in range(0, len(rows), size)]


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    length = min(len(ids) for ids in rows)
    for ids in rows[1:]:
        length = next((k for k in range(length) if ids[k] != first[k]), length)
    return length
