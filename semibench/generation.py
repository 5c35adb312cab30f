"""The generator: prompts in, sampled completions out, each stamped with the weight version that made it.

A `Generator` holds its own copy of the weights, so a generator that has not been synced really
serves old weights; staleness is never simulated. Engines: HF transformers (`HFGenerator`, here)
and vLLM (`vllm_engine.VLLMGenerator`); `load_generator` serves a checkpoint with either.

Sampling is a pure function of (weights, prompts, `Sampling.seed`): the trainer seeds every call
with (run seed, step), so rollouts do not depend on what else the process generated before.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

import torch
from torch import Tensor

from semibench.config import resolve_engine
from semibench.sync import WeightSyncError


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


class HFGenerator:
    """Batched sampling with `transformers.generate` on a private copy of the policy."""

    @classmethod
    def from_pretrained(cls, path: str, dtype: torch.dtype | None = None, batch_size: int = 64) -> HFGenerator:
        """A generator serving a checkpoint (eval, judges): version 0 is the checkpoint's weights."""
        from semibench.hardware import torch_dtype
        from semibench.models import load_causal_lm, load_tokenizer

        dtype = dtype or torch_dtype("auto")
        return cls(load_causal_lm(path, dtype), load_tokenizer(path), dtype, batch_size)

    def __init__(self, model: torch.nn.Module, tokenizer, dtype: torch.dtype, batch_size: int = 64):
        self.model = copy.deepcopy(model).to(dtype).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.version = 0
        self.eos_ids = _eos_ids(model.generation_config, model.config, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    @torch.no_grad()
    def load_weights(self, version: int, state: Mapping[str, Tensor]) -> None:
        # Copy into the existing buffers: new allocations are what makes a CPU sync slow.
        own = self.model.state_dict(keep_vars=True)  # parameters and persistent buffers, by reference
        missing = [name for name in own if name not in state]
        if missing:
            raise WeightSyncError(f"weight sync to version {version} failed: {len(missing)} tensors missing, e.g. {missing[0]}")
        for name, tensor in own.items():
            tensor.data.copy_(state[name])
        self.version = version

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], n: int, sampling: Sampling) -> list[Completion]:
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)  # HF samples from the global stream: seed it for this call
        requests = [(i, list(p)) for i, p in enumerate(prompts) for _ in range(n)]
        out: list[Completion] = []
        for start in range(0, len(requests), self.batch_size):
            out += self._generate_batch(requests[start : start + self.batch_size], sampling)
        return out

    def _generate_batch(self, requests: list[tuple[int, list[int]]], sampling: Sampling) -> list[Completion]:
        input_ids, attention = left_pad([ids for _, ids in requests], self.pad_id)
        width = input_ids.shape[1]
        knobs = {"do_sample": False} if sampling.greedy else {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
        result = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            **knobs,
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
            kept, text, stopped = cut_at_stop(self.tokenizer, kept, sampling.stop)
            out.append(
                Completion(
                    prompt_index=prompt_index,
                    token_ids=tuple(kept),
                    logprobs=tuple(token_logps[row, : len(kept)].tolist()),
                    text=text,
                    version=self.version,
                    finished=end is not None or stopped,
                )
            )
        return out


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
    return _eos_ids(generation, AutoConfig.from_pretrained(path), tokenizer)


def _eos_ids(generation_config, model_config, tokenizer) -> list[int]:
    ids = generation_config.eos_token_id if generation_config is not None else None
    if ids is None:
        ids = getattr(model_config, "eos_token_id", None)
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def load_generator(path: str, engine: str = "auto", dtype: torch.dtype | None = None, seed: int = 0, batch_size: int = 64, **vllm_options) -> Generator:
    """A generator serving the checkpoint at `path` (version 0 = its weights), for eval, judges and training.

    vLLM engines are cached per process: asking again for a checkpoint of the same architecture
    reloads weights into the running engine (seconds) instead of starting one (a minute on CPU).
    `vllm_options` go to `vllm_engine.EngineSpec` (max_model_len, enforce_eager, ...).
    """
    if resolve_engine(engine) == "vllm":
        from semibench.vllm_engine import VLLMGenerator

        return VLLMGenerator(path, dtype, seed, **vllm_options)
    return HFGenerator.from_pretrained(path, dtype, batch_size)
