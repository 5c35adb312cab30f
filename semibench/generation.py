"""The generator: prompts in, sampled completions out, each stamped with the weight version that made it.

A `Generator` holds its own copy of the weights, so a generator that has not been synced really
serves old weights; staleness is never simulated. Engines: HF transformers (here); vLLM next.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256


@dataclass(frozen=True)
class Completion:
    prompt_index: int  # index into the prompts passed to `generate`
    token_ids: tuple[int, ...]  # sampled tokens, up to and including EOS when it was reached
    logprobs: tuple[float, ...]  # the generator's log-prob of each sampled token (raw model distribution)
    text: str
    version: int  # weight version that produced it
    finished: bool  # ended on EOS rather than the length limit


class Generator(Protocol):
    version: int

    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: Sampling) -> list[Completion]:
        """`n` completions per prompt, grouped by prompt: result[i * n + j] is sample j of prompt i."""
        ...

    def load_weights(self, version: int, state: Mapping[str, Tensor]) -> None:
        """Replace the served weights with `state` (a full state dict) and stamp them `version`."""
        ...


class HFGenerator:
    """Batched sampling with `transformers.generate` on a private copy of the policy."""

    def __init__(self, model: torch.nn.Module, tokenizer, dtype: torch.dtype, batch_size: int = 64):
        self.model = copy.deepcopy(model).to(dtype).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.version = 0
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    @torch.no_grad()
    def load_weights(self, version: int, state: Mapping[str, Tensor]) -> None:
        # Copy into the existing buffers: new allocations are what makes a CPU sync slow.
        own = self.model.state_dict(keep_vars=True)  # parameters and persistent buffers, by reference
        missing = [name for name in own if name not in state]
        if missing:
            raise RuntimeError(f"weight sync to version {version} failed: {len(missing)} tensors missing, e.g. {missing[0]}")
        for name, tensor in own.items():
            tensor.data.copy_(state[name])
        self.version = version

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: Sampling) -> list[Completion]:
        requests = [(i, list(p)) for i, p in enumerate(prompts) for _ in range(n)]
        out: list[Completion] = []
        for start in range(0, len(requests), self.batch_size):
            out += self._generate_batch(requests[start : start + self.batch_size], sampling)
        return out

    def _generate_batch(self, requests: list[tuple[int, list[int]]], sampling: Sampling) -> list[Completion]:
        input_ids, attention = left_pad([ids for _, ids in requests], self.pad_id)
        width = input_ids.shape[1]
        result = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=0,
            max_new_tokens=sampling.max_new_tokens,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        new_tokens = result.sequences[:, width:]  # [B, L]
        # Raw logits (before temperature / top-p): the model's own log-probs, as vLLM reports them.
        # One position at a time: a [B, L, V] float copy would be hundreds of MB of fresh memory.
        token_logps = torch.stack(
            [step_logits.float().log_softmax(-1).gather(-1, new_tokens[:, t, None]).squeeze(-1) for t, step_logits in enumerate(result.logits)],
            dim=1,
        )  # [B, L]
        out = []
        for row, (prompt_index, _) in enumerate(requests):
            ids = new_tokens[row].tolist()
            end = next((k + 1 for k, t in enumerate(ids) if t in self.eos_ids), None)
            kept = ids[:end] if end is not None else ids
            out.append(
                Completion(
                    prompt_index=prompt_index,
                    token_ids=tuple(kept),
                    logprobs=tuple(token_logps[row, : len(kept)].tolist()),
                    text=self.tokenizer.decode(kept, skip_special_tokens=True),
                    version=self.version,
                    finished=end is not None,
                )
            )
        return out


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """[B, L] ids and attention mask, padded on the left so every row's next token is at position L."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, ids in enumerate(rows):
        input_ids[row, width - len(ids) :] = torch.tensor(list(ids), dtype=torch.long)
        attention[row, width - len(ids) :] = 1
    return input_ids, attention


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id if model.generation_config is not None else None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
