"""Everything that touches torch.distributed: the process group, FSDP2 sharding and the collectives.

Who runs what (torchtitan-style data parallelism; generation as in TRL's server mode):

- One process (`python -m semibench train`): no process group, a `World` of one, every helper
  here is a local no-op. Under `torchrun` (WORLD_SIZE set) there is always a process group, even
  for one rank, so `torchrun --nproc_per_node=1` runs the sharded path (and is how to use a GPU).
- Generation: one logical generator, hosted on rank 0 (`Rank0Generator`). It produces the step's
  whole batch with the (seed, step) sampling seed and broadcasts the completions, so the rollouts
  of step k are the same for any number of ranks, and so only rank 0 needs the full weights
  (a vLLM engine too: one engine for the run, never one per trainer rank, which would also need
  N copies of the weights and N syncs).
- Rewards: each rank scores a contiguous slice of the step's prompts (`shard_range`); the scores
  are gathered (`gather_lists`) before group normalisation and pair selection.
- Training: every rank builds the same global pairs/groups, takes a contiguous slice of them,
  divides its loss by the *global* count, and FSDP sums the gradients (divide factor 1): the
  update is the one-rank update up to float summation order.
- Weights: FSDP2 `fully_shard` per decoder block, then the root; optional MixedPrecisionPolicy
  (bf16 params, fp32 gradient reduction) and activation checkpointing. The full state dict is
  gathered to rank 0 (CPU) for generator sync and HF export (`full_state_dict`).
"""

from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.distributed as tdist
from torch import Tensor, nn
from torch.distributed.tensor import DTensor


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    sharded: bool = False  # a process group exists and models are FSDP2-sharded over it
    device: torch.device = torch.device("cpu")  # where the trainer's tensors live
    mesh: Any = None  # the 1-D DeviceMesh of all ranks (None when not sharded)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(timeout_s: float = 1800) -> World:
    """The world this process belongs to; under torchrun, creates the process group (once per process).

    NCCL on GPUs (one per local rank), gloo on CPU. The timeout bounds how long a rank waits for a
    peer that died; torchrun tears the others down sooner when a rank exits non-zero.
    """
    if "WORLD_SIZE" not in os.environ:
        return World()
    from torch.distributed.device_mesh import init_device_mesh

    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not tdist.is_initialized():
        # device_id binds NCCL's communicator to this rank's GPU now (torch otherwise guesses it at the
        # first barrier, and warns). gloo takes none.
        bound = {"device_id": device} if backend == "nccl" else {}
        tdist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **bound)
        atexit.register(tdist.destroy_process_group)
    mesh = init_device_mesh(device.type, (tdist.get_world_size(),))
    return World(tdist.get_rank(), tdist.get_world_size(), True, device, mesh)


def decoder_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks, found by the class names HF lists in `_no_split_modules`."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    # By MRO: FSDP2 swaps a sharded module's class for a subclass named FSDP<Name>.
    blocks = [m for m in model.modules() if any(c.__name__ in names for c in type(m).__mro__)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} names no decoder block class in _no_split_modules; cannot shard it per block")
    return blocks


def prepare_model(model: nn.Module, world: World, mixed_precision: bool, activation_checkpointing: bool) -> nn.Module:
    """Activation checkpointing (when asked, any world) and FSDP2 sharding (when the world is sharded).

    Sharding is per decoder block, then the root (which takes the embeddings, final norm and the
    tied head), so only one block's full weights exist at a time in forward and backward.
    """
    if activation_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

        block_types = tuple({type(b) for b in decoder_blocks(model)})
        # Non-reentrant checkpointing (the default of checkpoint_wrapper) composes with FSDP2's hooks.
        apply_activation_checkpointing(model, check_fn=lambda m: isinstance(m, block_types))
    if not world.sharded:
        return model.to(world.device)
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if mixed_precision else MixedPrecisionPolicy()
    for block in decoder_blocks(model):
        fully_shard(block, mesh=world.mesh, mp_policy=policy)
    fully_shard(model, mesh=world.mesh, mp_policy=policy)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            # Each rank's loss is already divided by the global number of units: sum, don't average.
            # Plain SUM reductions: gloo has no PREMUL_SUM, and a factor of 1 needs no scaling.
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    return model


def full_state_dict(model: nn.Module, world: World) -> dict[str, Tensor]:
    """Unsharded weights for the generator and the HF export: on rank 0 (CPU); {} on other ranks.

    Collective: every rank must call it. One process: the module's own state dict (no copy).
    """
    if not world.sharded:
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return retie(full, model)


def gather_full(state: Mapping[str, Tensor], world: World, model: nn.Module) -> dict[str, Tensor]:
    """Sharded tensors (a weight snapshot of `model`) -> full CPU tensors on rank 0, {} elsewhere. Collective."""
    out = {}
    for name, tensor in state.items():
        full = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
        if world.is_main:
            out[name] = full.cpu()
    return retie(out, model)


def retie(full: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Make the names of one tied parameter (lm_head = embeddings) one tensor again, as in `model.state_dict()`.

    Gathering returns each name as a tensor of its own; the generator's weight layout takes tied
    aliases only when they share storage, and two copies would also cost the memory twice.
    """
    first: dict[int, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        owner = first.setdefault(id(param), name)
        if owner != name and owner in full and name in full:
            full[name] = full[owner]
    return full


def copy_weights_(dst: nn.Module, src: nn.Module) -> None:
    """dst <- src for two modules of one architecture, sharded alike: shard by shard, no communication."""
    copy_state_(dst, src.state_dict())


@torch.no_grad()
def copy_state_(dst: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Copy `state` (sharded like dst, e.g. a `snapshot_`) into dst's weights, in place."""
    for name, tensor in dst.state_dict().items():
        tensor.copy_(state[name])


@torch.no_grad()
def snapshot_(dst: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Copy the model's (local shards of its) weights into `dst`, allocating them on first use."""
    for name, tensor in model.state_dict().items():
        if name in dst:
            dst[name].copy_(tensor)
        else:
            dst[name] = tensor.detach().clone()
    return dst


def clip_grad_norm_(parameters: Sequence[nn.Parameter], max_norm: float) -> float:
    """Clip by the global gradient norm; with sharded gradients the norm is reduced across ranks."""
    parameters = list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    if isinstance(total, DTensor):
        total = total.full_tensor()  # per-shard partial norms -> the norm of the whole gradient
    torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, total)
    return total.item()


def shard_range(num_items: int, world: World) -> range:
    """This rank's contiguous slice of `num_items`; sizes differ by at most one, earlier ranks larger."""
    base, extra = divmod(num_items, world.size)
    start = world.rank * base + min(world.rank, extra)
    return range(start, start + base + (world.rank < extra))


def broadcast_object(obj: Any, world: World) -> Any:
    """Rank 0's `obj` on every rank (pickled; for rollouts and small metadata, not tensors)."""
    if not world.sharded:
        return obj
    box = [obj if world.is_main else None]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def gather_lists(items: list, world: World) -> list:
    """Every rank's list, concatenated in rank order, on every rank."""
    if not world.sharded:
        return list(items)
    parts: list[Any] = [None] * world.size
    tdist.all_gather_object(parts, list(items))
    return [x for part in parts for x in part]


def sum_across(values: dict[str, float], world: World) -> dict[str, float]:
    """Per-key sums of every rank's metric sums (a key may be missing on a rank that had no data)."""
    if not world.sharded:
        return dict(values)
    parts: list[Any] = [None] * world.size
    tdist.all_gather_object(parts, dict(values))
    out: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = out.get(key, 0.0) + value
    return out


def barrier(world: World) -> None:
    if world.sharded:
        tdist.barrier()


def rank0_generator(make, world: World):
    """One process: `make()` itself. Sharded: a `Rank0Generator`, with `make()` called on rank 0 only."""
    if not world.sharded:
        return make()
    return Rank0Generator(make() if world.is_main else None, world)


class Rank0Generator:
    """The `Generator` protocol on every rank, backed by one engine on rank 0.

    Rank 0 generates the whole batch and broadcasts it; the others only track the version, so the
    loop's sync and staleness logic reads the same on every rank. `load_weights` takes what
    `full_state_dict` returned (the weights on rank 0, {} elsewhere).
    """

    def __init__(self, engine, world: World):
        if world.is_main and engine is None:
            raise ValueError("rank 0 needs a generator engine")
        self.engine = engine if world.is_main else None
        self.world = world
        self._version = 0 if engine is None else engine.version

    @property
    def version(self) -> int:
        return self.engine.version if self.engine is not None else self._version

    def load_weights(self, version: int, state: Mapping[str, Tensor]) -> None:
        if self.engine is not None:
            self.engine.load_weights(version, state)
        self._version = version

    def generate(self, prompts, n: int, sampling):
        completions = self.engine.generate(prompts, n, sampling) if self.engine is not None else None
        return broadcast_object(completions, self.world)
