"""`wildchat_valid`: how the paper picks chat checkpoints (paper.md §1.8), as a benchmark.

The 470 held-out WildChat first turns (`paper_data.wildchat("valid")`), the chat task's prompt
template, N completions per prompt at the eval sampling, each scored by a scalar reward model
given the user turn and the completion, as training rewards them. Seed j (the j-th completion of
every prompt) gets the paper's code's `avg_reward_len_norm`: mean reward / mean completion length
in tokens (a ratio of means). The score is the mean over seeds with its standard error over seeds,
as avg@N elsewhere; with one sample, the delta-method standard error of the ratio over prompts.
The plain mean reward sits beside it in `metrics`: Athene-RM favours long answers, which is why the
paper selects by the ratio. Neither is a percentage.

The reward model: `--reward-model` (and `--rm-cls-token`) when given, a deliberate choice such as
a held-out RM; else the run's own `reward.reward_model` / `reward.rm_cls_token` (its config.json,
or the seed.json of a grid's seed row), so a run is selected by the reward it was trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from semibench.config import ConfigError
from semibench.evals.data import DataMissing, Origin, Source
from semibench.evals.session import GenRequest, Session, prompt_key

if TYPE_CHECKING:
    from semibench.evals.settings import EvalSettings


@dataclass(frozen=True)
class RewardModelSpec:
    name: str  # hub id or local path of a scalar reward model
    cls_token: str = ""  # Athene style: appended, the score read at its last position
    max_length: int = 4096
    batch_size: int = 8
    device: str = ""  # "" = cuda if present, else cpu
    origin: str = "--reward-model"  # where it was configured, recorded in the result


def reward_model_spec(settings: EvalSettings, origin: Origin | None) -> RewardModelSpec:
    """The settings' reward model, else the run's; DataMissing with the fix when neither names one."""
    if settings.reward_model:
        spec = RewardModelSpec(settings.reward_model, settings.rm_cls_token)
    elif origin is not None and origin.config.reward.reward_model:
        r = origin.config.reward
        spec = RewardModelSpec(r.reward_model, r.rm_cls_token, r.rm_max_length, r.rm_batch_size, r.rm_device, str(origin.path))
    else:
        raise DataMissing("wildchat_valid: needs a reward model; pass --reward-model <id|path> (Athene-RM-8B also --rm-cls-token "
                          "'<|reserved_special_token_1|>'), or evaluate a run checkpoint whose config sets reward.reward_model")
    return spec


def check_reward_model(spec: RewardModelSpec) -> None:
    """DataMissing with the fix when the reward model is neither a local checkpoint nor in the hub cache."""
    from transformers.utils import cached_file

    try:
        found = cached_file(spec.name, "config.json", _raise_exceptions_for_missing_entries=False)
    except Exception:  # a malformed id, offline and not cached, gated: each raises its own type
        found = None
    if found is None:
        raise DataMissing(f"wildchat_valid: reward model {spec.name} (from {spec.origin}) is neither a local checkpoint nor in the hub cache; "
                          "download it or pass --reward-model <path>")


def ratio_stderr(rewards: Sequence[float], lengths: Sequence[int]) -> float | None:
    """Delta-method standard error of mean(rewards) / mean(lengths) over prompts (one sample each).

    The ratio q = R/L moves with the per-prompt residuals r_i - q * l_i: SE = sqrt(sum res^2 / (m (m - 1))) / L.
    """
    m = len(rewards)
    if m < 2:
        return None
    mean_length = max(sum(lengths) / m, 1.0)  # as length_normalized_reward: an empty rollout divides by 1
    q = (sum(rewards) / m) / mean_length
    residuals = sum((r - q * length) ** 2 for r, length in zip(rewards, lengths))
    return math.sqrt(residuals / (m * (m - 1))) / mean_length


def run_wildchat_valid(session: Session, bench: str, source: Source) -> dict:
    """Generate, score every completion with the reward model, and report the length-normalised reward."""
    import torch

    from semibench import paper_data
    from semibench.datafiles import read_spec
    from semibench.evals.scoring.samples import seed_means
    from semibench.hardware import torch_dtype
    from semibench.rewards import length_normalized_reward
    from semibench.rewards.reward_model import ScalarRewardModel

    s, n = session.settings, session.settings.samples_per_prompt
    spec = reward_model_spec(s, session.origin)
    try:
        users = paper_data.wildchat("valid", source.dataset)
    except ConfigError as exc:  # a malformed row, fewer usable prompts than the split needs
        raise DataMissing(f"{bench}: {exc}") from None
    users = users[: s.limit] if s.limit else users
    template = read_spec("templates")["if"]["plain"]  # the chat task's user turn, as the RM saw it in training
    instructions = [template.format(instruction=u) for u in users]
    requests = [GenRequest(prompt_key(p), p) for p in map(session.chat, instructions)]
    store = session.store(bench)
    completions = session.complete(store, requests, bench)
    lengths = [store.rows[r.key]["num_tokens"][:n] for r in requests]

    # Loaded only now, after generation, and dropped after scoring: it need not share memory with the generator.
    rm = ScalarRewardModel(spec.name, spec.cls_token, spec.max_length, spec.batch_size, torch_dtype(s.dtype), spec.device)
    session.progress(f"{bench} (reward model)", 0, len(requests))
    flat = rm([i for i, cs in zip(instructions, completions) for _ in cs], [c for cs in completions for c in cs])
    session.progress(f"{bench} (reward model)", len(requests), len(requests))
    truncated = rm.num_truncated
    del rm
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    rewards = [flat[i * n : (i + 1) * n] for i in range(len(requests))]
    store.rewrite([{**store.rows[r.key], "instruction": u, "completions": cs, "num_tokens": ls, "rewards": rs}
                   for r, u, cs, ls, rs in zip(requests, users, completions, lengths, rewards)])

    per_seed = [length_normalized_reward([r[j] for r in rewards], [ls[j] for ls in lengths]) for j in range(n)]
    if n == 1:
        score, stderr = per_seed[0], ratio_stderr([r[0] for r in rewards], [ls[0] for ls in lengths])
    else:
        score, stderr = seed_means(per_seed)
    all_rewards, all_lengths = [x for r in rewards for x in r], [x for ls in lengths for x in ls]
    metrics = {"reward_len_norm": score, "mean_reward": sum(all_rewards) / len(all_rewards),
               "mean_tokens": sum(all_lengths) / len(all_lengths), "rm_truncated": truncated}
    return {"score": score, "stderr": stderr, "primary_metric": "reward_len_norm", "n": len(users), "metrics": metrics,
            "reward_model": {"name": spec.name, "cls_token": spec.cls_token, "max_length": spec.max_length, "from": spec.origin}}
