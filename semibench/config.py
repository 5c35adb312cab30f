"""Typed, frozen run configuration: presets, `--set a.b=value` overrides, validation, JSON round trip.

Every hyperparameter of the paper's Table 4 is a field here. A run is fully described by its
resolved `RunConfig`; the run id is a hash of it (see `runs.py`), and it is saved next to the
results. Secrets never live here: API keys are read from the environment where they are used.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
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


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 1.0  # paper: training rollouts at T = 1.0, top-p 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256  # paper: 2048 math, 1024 chat
    samples_per_prompt: int = 8  # paper: GRPO group 8; DPO N unstated
    batch_size: int = 64  # sequences per generate call (memory bound, not semantics)


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
    engine: str = "hf"  # generation engine


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
    },
}

# Objective- and task-dependent defaults from the paper's Table 4, applied before user overrides.
TABLE4_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("dpo", "math"): {"loss.dpo_beta": 0.1, "optim.adam_eps": 1e-4, "train.ref_sync": True},
    ("dpo", "if"): {"loss.dpo_beta": 0.01, "optim.adam_eps": 1e-8, "train.ref_sync": False},
    ("dpo", "mixed"): {"loss.dpo_beta": 0.01, "optim.adam_eps": 1e-8, "train.ref_sync": False},
    ("grpo", "math"): {"loss.kl_beta": 0.001, "optim.adam_eps": 1e-4, "train.ref_sync": False},
    ("grpo", "if"): {"loss.kl_beta": 0.001, "optim.adam_eps": 1e-8, "train.ref_sync": False},
    ("grpo", "mixed"): {"loss.kl_beta": 0.001, "optim.adam_eps": 1e-8, "train.ref_sync": False},
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
    row = TABLE4_DEFAULTS.get((family, probe.task.name), {})
    # A preset's own choice (e.g. tiny's eps) wins over Table 4; user overrides win over both.
    row = {k: v for k, v in row.items() if k not in PRESETS[preset]}
    cfg = apply_overrides(apply_overrides(base, row), overrides)
    validate(cfg)
    return cfg


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
        (cfg.train.engine in ("hf",), "train.engine must be hf (the vLLM engine is not built yet)"),
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
