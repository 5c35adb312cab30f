"""Pointwise LLM judge: reward = expected rating under the judge's distribution over "1".."9".

One forward pass per (instruction, response): the judge's next-token log-probs at the answer slot,
restricted to the nine rating tokens and renormalised, give E[rating]; the reward is rescaled to
[0, 1]. A graded score, so best-vs-worst DPO pairs and GRPO advantages exist even when a weak judge
would always answer the same digit. The packaged SmolLM2-135M is a weak judge; real runs pass a
reward model (`reward.if_reward=reward_model`) or a strong judge.
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
        pad = self.tokenizer.pad_token_id
        scores = []
        for start in range(0, len(encoded), self.batch_size):
            input_ids, attention = left_pad(encoded[start : start + self.batch_size], pad)
            position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=input_ids, attention_mask=attention, position_ids=position_ids, logits_to_keep=1).logits[:, -1]
            probs = logits.float()[:, self.rating_ids].softmax(-1)  # [B, 9]
            expected = (probs * torch.arange(1, 10, dtype=torch.float32)).sum(-1)
            scores += ((expected - 1) / 8).tolist()
        return scores
