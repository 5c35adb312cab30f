"""The benchmark's work, the same for semibench and TRL: a random-init model written once, prompts,
a reward, and what a step of it costs in model FLOPs.

Random weights time a step as well as trained ones (the kernels see shapes, not values), so the
device needs no checkpoint. The tokenizer is a word-level one with one word per model token, built
in memory: any vocabulary size, no download. The model's generation config holds EOS off until
`completion_tokens` (`min_new_tokens`), so every completion on either side is exactly that long and
the two sides train on the same number of tokens. The reward is a hash of the completion's tokens:
never tied, so every DPO prompt gives a pair and every GRPO group an advantage on both sides.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

from semibench.config import ConfigError
from semibench.datafiles import TASKS_DIR, read_spec

SPEC = "bench/gpu"  # tasks/bench/gpu.yaml
PAD, EOS = "<pad>", "<eos>"  # token ids 0 and 1; every other id is the word "w<id>"
OBJECTIVES = ("grpo", "dpo")


@dataclass(frozen=True)
class Shape:
    name: str
    model_config: Path
    prompt_tokens: int
    completion_tokens: int
    work: dict  # objective -> {"prompts": P, "samples": n}
    ceiling_size: int
    warmup_steps: int
    measured_steps: int

    def sequences(self, objective: str) -> int:
        return self.work[objective]["prompts"] * self.work[objective]["samples"]


def shape_names() -> list[str]:
    return list(read_spec(SPEC)["shapes"])


def load_shape(name: str) -> Shape:
    shapes = read_spec(SPEC)["shapes"]
    if name not in shapes:
        raise ConfigError(f"unknown shape {name!r}; choose one of {', '.join(shapes)}")
    s = shapes[name]
    return Shape(name, TASKS_DIR / "bench" / s["model"], s["prompt_tokens"], s["completion_tokens"], {k: s[k] for k in OBJECTIVES},
                 s["ceiling_size"], s["warmup_steps"], s["measured_steps"])


@dataclass(frozen=True)
class ModelInfo:
    path: str  # the written checkpoint: both sides load it, so they start from the same weights
    params: int  # unique parameters (a tied head counted once)
    head_params: int  # vocab x hidden: the LM head's matmul
    body_params: int  # params - the embedding (and an untied head): what every token's forward multiplies through
    vocab_size: int

    def as_record(self) -> dict:
        return {"path": self.path, "params": self.params, "head_params": self.head_params, "body_params": self.body_params, "vocab_size": self.vocab_size}


def word_tokenizer(vocab_size: int):
    """A tokenizer with one whitespace-separated word per model token id: "w17 w923" -> [17, 923]."""
    import tokenizers
    from tokenizers import models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {PAD: 0, EOS: 1} | {f"w{i}": i for i in range(2, vocab_size)}
    backend = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token=PAD))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, eos_token=EOS)


def write_model(shape: Shape, out: Path, device, seed: int = 0) -> ModelInfo:
    """Random-init the shape's model on `device` (a 1B init on CPU takes a while), write it in bf16
    (exact when loaded back as fp32 master weights; half the bytes) with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    raw = json.loads(shape.model_config.read_text())
    raw |= {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": None}  # the word tokenizer's ids
    config = AutoConfig.for_model(**raw)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=1, pad_token_id=0, min_new_tokens=shape.completion_tokens)
    model.save_pretrained(out)
    word_tokenizer(config.vocab_size).save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())  # parameters() yields a tied weight once
    head = config.vocab_size * config.hidden_size
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    return ModelInfo(str(out), params, head, params - head * (1 if tied else 2), config.vocab_size)


def prompt_texts(shape: Shape, count: int, vocab_size: int, seed: int = 0) -> list[str]:
    """`count` prompts of exactly `prompt_tokens` words (ids 2.. : never PAD or EOS)."""
    rng = random.Random(seed)
    return [" ".join(f"w{rng.randrange(2, vocab_size)}" for _ in range(shape.prompt_tokens)) for _ in range(count)]


def reward(token_ids) -> float:
    """In [0, 1): a hash of the completion's tokens, the same on both sides; ties have probability ~2^-32."""
    return zlib.crc32(",".join(map(str, token_ids)).encode()) / 2**32


def step_flops(model: ModelInfo, tokens: int, head_positions: int) -> float:
    """Model FLOPs of one training step: the policy's forward and backward (3 forwards) and the
    reference's forward (1), where a forward is 2 FLOPs per parameter per token through the body and
    2 per head parameter at each position the LM head is computed for (the trainer asks for logits of
    the completion positions only). Left out: attention's score and value products (~1% at these
    lengths), activation-checkpointing's recompute (MFU counts the model's FLOPs, not the hardware's)."""
    forward = 2 * (model.body_params * tokens + model.head_params * head_positions)
    return 4 * forward
