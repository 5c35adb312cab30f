"""The HF transformers engine: batched `generate` on a private copy of the policy, in the trainer's process.

The copy lives on the device it is given: the trainer passes its own (a GPU under torchrun), so a
GPU run generates on the GPU; evaluation and judges keep the CPU default."""

from __future__ import annotations

import copy
from typing import Mapping, Sequence

import torch
from torch import Tensor

from semibench.engines.base import Completion, Sampling, cut_at_stop, eos_ids_from_configs, left_pad
from semibench.sync import WeightSyncError


class HFGenerator:
    """Batched sampling with `transformers.generate` on a private copy of the policy."""

    @classmethod
    def from_pretrained(cls, path: str, dtype: torch.dtype | None = None, batch_size: int = 64, device: torch.device | str | None = None) -> HFGenerator:
        """A generator serving a checkpoint (eval, judges): version 0 is the checkpoint's weights."""
        from semibench.hardware import torch_dtype
        from semibench.models import load_causal_lm, load_tokenizer

        dtype = dtype or torch_dtype("auto")
        return cls(load_causal_lm(path, dtype), load_tokenizer(path), dtype, batch_size, device)

    def __init__(self, model: torch.nn.Module, tokenizer, dtype: torch.dtype, batch_size: int = 64, device: torch.device | str | None = None):
        self.device = torch.device(device or "cpu")
        self.model = copy.deepcopy(model).to(device=self.device, dtype=dtype).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.version = 0
        self.eos_ids = eos_ids_from_configs(model.generation_config, model.config, tokenizer)
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
        input_ids, attention = (t.to(self.device) for t in left_pad([ids for _, ids in requests], self.pad_id))
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
