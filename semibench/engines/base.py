"""What every engine shares: the `Generator` protocol, its `Sampling` in and `Completion`s out, and the
token helpers both engines use (stop strings, EOS ids, left padding).

A `Generator` holds its own copy of the weights, so a generator that has not been synced really
serves old weights; staleness is never simulated. Engines: HF transformers (`hf.HFGenerator`) and
vLLM (`vllm.VLLMGenerator`); `engines.load_generator` serves a checkpoint with either.

Sampling is a pure function of (weights, prompts, `Sampling.seed`): the trainer seeds every call
with (run seed, step), so rollouts do not depend on what else the process generated before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()  # cut the text (and its tokens) before the first of these strings
    seed: int | None = None  # sampling seed of this call; None = the engine's running stream

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


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


def cut_at_stop(tokenizer, token_ids: list[int], stop: Sequence[str]) -> tuple[list[int], str, bool]:
    """Decode, and cut before the earliest stop string; tokens are trimmed to the shortest prefix covering the kept text.

    Generation runs past a stop string and is cut afterwards, which for greedy decoding gives the
    same text as stopping early (lm-eval's HF backend does the same post-hoc cut).
    """
    text = tokenizer.decode(token_ids, skip_special_tokens=True)
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    if not cuts:
        return token_ids, text, False
    text = text[: min(cuts)]
    keep = len(token_ids)
    while keep > 0 and tokenizer.decode(token_ids[: keep - 1], skip_special_tokens=True).startswith(text):
        keep -= 1
    return token_ids[:keep], text, True


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """[B, L] ids and attention mask, padded on the left so every row's next token is at position L."""
    width = max(len(ids) for ids in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, ids in enumerate(rows):
        input_ids[row, width - len(ids) :] = torch.tensor(list(ids), dtype=torch.long)
        attention[row, width - len(ids) :] = 1
    return input_ids, attention


def eos_ids_for(path: str, tokenizer) -> list[int]:
    """The ids that end a completion for the checkpoint at `path` (generation config, then tokenizer)."""
    from transformers import AutoConfig, GenerationConfig

    generation = GenerationConfig.from_pretrained(path) if (Path(path) / "generation_config.json").exists() else None
    return eos_ids_from_configs(generation, AutoConfig.from_pretrained(path), tokenizer)


def eos_ids_from_configs(generation_config, model_config, tokenizer) -> list[int]:
    ids = generation_config.eos_token_id if generation_config is not None else None
    if ids is None:
        ids = getattr(model_config, "eos_token_id", None)
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
