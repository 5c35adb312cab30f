"""Scalar reward models: any one-output `AutoModelForSequenceClassification`, and Athene-RM style.

Athene-RM-8B (the paper's IF reward, paper.md §1.8) is a Llama backbone plus a bias-free linear
`v_head`; its checkpoint has no modeling code, so `AutoModelForSequenceClassification` would
attach a fresh 2-label `score` head and silently return noise. A checkpoint holding
`v_head.weight` is therefore loaded as backbone (`AutoModel`) + that head. Its input is what
Nexusflow's pipeline and the paper's fairseq2 code build: the chat template rendered as text, the
CLS token appended (`<|reserved_special_token_1|>`, id 128003), tokenized with the tokenizer's
own special tokens; the score is the head at the last CLS position.

Truncation: inputs longer than `max_length` lose the end of the response but keep the CLS token
(the paper's code cut the CLS off and scored such inputs 0.0, which on Athene's mostly negative
scale ranks a truncated answer near the top). Truncations are counted in `num_truncated`.
Without a CLS token the score is read at the last real token, where transformers' own
sequence-classification heads pool.
"""

from __future__ import annotations

import json
import warnings
from typing import Sequence

import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import cached_file
from transformers.utils import logging as hf_logging

from semibench.config import ConfigError

V_HEAD = "v_head.weight"


def checkpoint_tensor(name_or_path: str, key: str) -> torch.Tensor | None:
    """One tensor of a (possibly sharded) safetensors checkpoint, local or on the hub; None if absent."""
    from safetensors import safe_open

    def find(filename: str) -> str | None:
        return cached_file(name_or_path, filename, _raise_exceptions_for_missing_entries=False)

    index = find("model.safetensors.index.json")
    if index is not None:
        shard = json.loads(open(index).read())["weight_map"].get(key)
        files = [find(shard)] if shard else []
    else:
        files = [find("model.safetensors")]
    for file in filter(None, files):
        with safe_open(file, framework="pt") as f:
            if key in f.keys():
                return f.get_tensor(key)
    return None


class ScalarRewardModel:
    def __init__(self, name_or_path: str, cls_token: str = "", max_length: int = 4096, batch_size: int = 4,
                 dtype: torch.dtype | None = None, device: str = ""):
        from semibench.hardware import torch_dtype

        dtype = dtype or torch_dtype("auto")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        v_head = checkpoint_tensor(name_or_path, V_HEAD)
        if v_head is not None:  # Athene style: backbone + bias-free value head
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # the v_head is "unexpected" to the backbone: expected here
            try:
                self.backbone = AutoModel.from_pretrained(name_or_path, dtype=dtype)
            finally:
                hf_logging.set_verbosity(verbosity)
            self.head = torch.nn.Linear(v_head.shape[1], 1, bias=False, dtype=dtype)
            self.head.weight.data.copy_(v_head)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(name_or_path, dtype=dtype)
            if model.config.num_labels != 1:
                raise ConfigError(f"reward model {name_or_path} has {model.config.num_labels} outputs and no v_head; a scalar RM has 1")
            self.backbone, self.head = model.base_model, model.score
        for module in (self.backbone, self.head):
            module.to(self.device).eval().requires_grad_(False)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        self.cls_token = cls_token
        self.cls_id = self._token_id(cls_token) if cls_token else None
        self.max_length = max_length
        self.batch_size = batch_size
        self.num_truncated = 0

    def _token_id(self, token: str) -> int:
        ids = self.tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1 or ids[0] == self.tokenizer.unk_token_id:
            raise ConfigError(f"reward.rm_cls_token {token!r} is not a single token of this reward model's tokenizer")
        return ids[0]

    def encode(self, instruction: str, response: str) -> list[int]:
        messages = [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]
        if self.cls_id is None:
            ids = list(self.tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
        else:  # exactly Athene's pipeline: template text + CLS text, then the tokenizer's own special tokens
            text = self.tokenizer.apply_chat_template(messages, tokenize=False) + self.cls_token
            ids = self.tokenizer(text)["input_ids"]
        if len(ids) > self.max_length:
            self.num_truncated += 1
            ids = ids[: self.max_length - 1] + [self.cls_id] if self.cls_id is not None else ids[: self.max_length]
        return ids

    @torch.no_grad()
    def __call__(self, instructions: Sequence[str], responses: Sequence[str]) -> list[float]:
        before = self.num_truncated
        encoded = [self.encode(i, r) for i, r in zip(instructions, responses)]
        if self.num_truncated > before:
            warnings.warn(f"reward model: {self.num_truncated - before} inputs truncated to {self.max_length} tokens")
        # Longest first, so each batch pads to similar lengths; scores go back to input order.
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        scores = [0.0] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encoded[i]) for i in rows)
            input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            for b, i in enumerate(rows):
                input_ids[b, : len(encoded[i])] = torch.tensor(encoded[i])
                attention[b, : len(encoded[i])] = 1
            input_ids, attention = input_ids.to(self.device), attention.to(self.device)
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention).last_hidden_state
            pooled = hidden[torch.arange(len(rows), device=self.device), self.score_positions(input_ids, attention)]
            for i, s in zip(rows, self.head(pooled).float().squeeze(-1).tolist()):
                scores[i] = s
        return scores

    def score_positions(self, input_ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Per row: the last real CLS token (Athene), else the last real token. Right-padded input."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        marks = attention.bool() if self.cls_id is None else attention.bool() & (input_ids == self.cls_id)
        return torch.where(marks, positions, -1).amax(-1)
