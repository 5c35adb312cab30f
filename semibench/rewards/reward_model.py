"""Scalar reward model: any `AutoModelForSequenceClassification` with one output.

Input is the RM tokenizer's chat template over (user: instruction, assistant: response). Athene-RM
style models read the score at an appended CLS token (`cls_token`); others at the last token, which
is where transformers' sequence-classification heads pool on right-padded input. Inputs longer
than `max_length` are cut (the response's end is lost) and counted in `num_truncated`.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


class ScalarRewardModel:
    def __init__(self, name_or_path: str, cls_token: str = "", max_length: int = 4096, batch_size: int = 4, dtype: torch.dtype = torch.bfloat16):
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.model = AutoModelForSequenceClassification.from_pretrained(name_or_path, dtype=dtype).eval().requires_grad_(False)
        if self.model.config.num_labels != 1:
            raise ValueError(f"reward model {name_or_path} has {self.model.config.num_labels} outputs; a scalar RM has 1")
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        self.model.config.pad_token_id = self.pad_id
        self.cls_id = self.tokenizer.convert_tokens_to_ids(cls_token) if cls_token else None
        self.max_length = max_length
        self.batch_size = batch_size
        self.num_truncated = 0

    def _encode(self, instruction: str, response: str) -> list[int]:
        messages = [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]
        ids = list(self.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
        budget = self.max_length - (self.cls_id is not None)
        if len(ids) > budget:
            self.num_truncated += 1
            ids = ids[:budget]
        return ids + ([self.cls_id] if self.cls_id is not None else [])

    @torch.no_grad()
    def __call__(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        before = self.num_truncated
        encoded = [self._encode(i, r) for i, r in zip(instructions, responses)]
        if self.num_truncated > before:
            warnings.warn(f"reward model: {self.num_truncated - before} inputs truncated to {self.max_length} tokens")
        scores = []
        for start in range(0, len(encoded), self.batch_size):
            chunk = encoded[start : start + self.batch_size]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            for row, ids in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention[row, : len(ids)] = 1
            hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention).last_hidden_state
            last = attention.sum(-1) - 1  # the CLS token when appended, else the last real token
            pooled = hidden[torch.arange(len(chunk)), last]
            scores += self.model.score(pooled).float().squeeze(-1).tolist()
        return scores
