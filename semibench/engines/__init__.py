"""Generators: HF transformers in-process (`hf`), vLLM in its own process (`vllm`), one protocol (`base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from semibench.config import resolve_engine

if TYPE_CHECKING:
    import torch

    from semibench.engines.base import Generator


def load_generator(path: str, engine: str = "auto", dtype: torch.dtype | None = None, seed: int = 0, batch_size: int = 64,
                   device: torch.device | None = None, **vllm_options) -> Generator:
    """A generator serving the checkpoint at `path` (version 0 = its weights), for eval, judges and training.

    vLLM engines are cached per process: asking again for a checkpoint of the same architecture
    reloads weights into the running engine (seconds) instead of starting one (a minute on CPU).
    `device`: where the HF engine's copy of the weights computes (CPU when None); a vLLM engine is
    placed by `vllm_options` instead. `vllm_options` go to `vllm.EngineSpec` (max_model_len, enforce_eager, ...).
    """
    if resolve_engine(engine) == "vllm":
        from semibench.engines.vllm import VLLMGenerator

        return VLLMGenerator(path, dtype, seed, **vllm_options)
    from semibench.engines.hf import HFGenerator

    return HFGenerator.from_pretrained(path, dtype, batch_size, device)
