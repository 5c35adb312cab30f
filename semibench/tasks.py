"""Training prompts: read a task spec from `tasks/`, load its sources, and serve batches by step.

A `Prompt` knows its kind ("math" or "if"); the reward is chosen from that kind, per sample. The
batch for step k is a pure function of (seed, k), so a resumed run sees exactly the same data.
"""

from __future__ import annotations

import functools
import json
import math
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from semibench.config import ConfigError, TaskConfig
from semibench.datafiles import last_boxed, read_jsonl, read_spec
from semibench.instructions import synthetic_instructions

CONSTRAINED = "constraints"  # task.if_data: synthetic requests with IFEval-type constraints (semibench.constraints)


@dataclass(frozen=True)
class Prompt:
    kind: str  # "math" | "if"
    text: str  # the user turn, template applied
    gold: str | None  # math: the reference answer; verifiable IF: its constraints as JSON (IFEval's row format)
    source: str  # where it came from (file, dataset, "reasoning_gym:<name>", "synthetic", "constraints")


def load_prompts(task: TaskConfig) -> dict[str, list[Prompt]]:
    """Prompt pool per kind the task declares, a function of the task alone (its `data_seed`, not the
    training seed); fails with one line naming the fix on bad data."""
    templates = read_spec("templates")
    pools = {}
    for kind in read_spec(task.name)["kinds"]:
        pools[kind] = _math_prompts(task, templates, task.data_seed) if kind == "math" else _if_prompts(task, templates, task.data_seed)
        if not pools[kind]:
            raise ConfigError(f"the {kind} prompt source of task '{task.name}' is empty")
    return pools


def _math_prompts(task: TaskConfig, templates: dict, seed: int) -> list[Prompt]:
    if task.math_template not in templates["math"]:
        raise ConfigError(f"unknown task.math_template '{task.math_template}'; choose from {', '.join(templates['math'])}")
    template = templates["math"][task.math_template]
    from semibench import paper_data

    numina = paper_data.named_source(task.math_data, "numina")
    if numina is not None:  # the paper's filtered NuminaMath-CoT, training split
        problems = paper_data.numina("train", numina, size=task.numina_size)
        return [Prompt("math", template.format(problem=p.problem), p.answer, f"numina:{p.source}") for p in problems]
    if task.math_data:
        rows = _read_rows(task.math_data, (task.math_question_key, task.math_answer_key), "task.math")
        items = [(r[task.math_question_key], gold_answer(str(r[task.math_answer_key]))) for r in rows]
        source = task.math_data
        return [Prompt("math", template.format(problem=q), a, source) for q, a in items]
    return [Prompt("math", template.format(problem=q), a, s) for q, a, s in _procedural_math(task, seed)]


# reasoning-gym draws item i from Random(seed + i), so data seeds 0 and 1 passed through as seeds would
# share every item but one, shifted by a place (a "replication" on the same problems). Each data seed
# owns a block of item seeds instead; data seed 0 keeps item seeds 0.. for training (and its held-out
# stream, evals.math.HELDOUT_SEED_OFFSET further on), as before.
ITEM_SEEDS_PER_DATA_SEED = 10_000_000


def reasoning_gym_seed(data_seed: int) -> int:
    """The first reasoning-gym item seed of `data_seed`'s block (its training pool starts there)."""
    return data_seed * ITEM_SEEDS_PER_DATA_SEED


def _procedural_math(task: TaskConfig, data_seed: int) -> list[tuple[str, str, str]]:
    import reasoning_gym

    sources = read_spec("sources")["procedural_math"]
    out = []
    per_source = max(1, task.num_prompts // len(task.reasoning_gym))
    for name in task.reasoning_gym:
        if name not in sources:
            raise ConfigError(f"unknown procedural math source '{name}' in task.reasoning_gym; choose from {', '.join(sources)}")
        spec = dict(sources[name])
        dataset = reasoning_gym.create_dataset(spec.pop("dataset"), size=per_source, seed=reasoning_gym_seed(data_seed), **spec)
        out += [(item["question"], str(item["answer"]), f"reasoning_gym:{name}") for item in dataset]
    return out


def _if_prompts(task: TaskConfig, templates: dict, seed: int) -> list[Prompt]:
    template = templates["if"]["plain"]
    from semibench import paper_data

    wildchat = paper_data.named_source(task.if_data, "wildchat")
    if wildchat is not None:  # the paper's WildChat first turns (1,000; 50k for its mixed run)
        return [Prompt("if", template.format(instruction=t), None, "wildchat") for t in paper_data.wildchat("train", wildchat, size=task.wildchat_size)]
    if task.if_data == CONSTRAINED:  # verifiable: each prompt's gold is its constraints, in IFEval's row format
        from semibench.constraints import constrained_instructions

        made = constrained_instructions(task.num_prompts, seed, task.if_constraints_per_prompt)
        return [Prompt("if", template.format(instruction=c.text), json.dumps(c.spec), CONSTRAINED) for c in made]
    if task.if_data:
        rows = _read_rows(task.if_data, (task.if_prompt_key,), "task.if")
        return [Prompt("if", template.format(instruction=r[task.if_prompt_key]), _constraints_of(r), task.if_data) for r in rows]
    texts = synthetic_instructions(task.num_prompts, seed)
    return [Prompt("if", template.format(instruction=t), None, "synthetic") for t in texts]


def _constraints_of(row: dict) -> str | None:
    """An IFEval-style row's constraints (`instruction_id_list`, `kwargs`) as the prompt's gold, for the verifiable IF reward."""
    if "instruction_id_list" not in row:
        return None
    return json.dumps({"instruction_id_list": row["instruction_id_list"], "kwargs": row.get("kwargs", [{}] * len(row["instruction_id_list"]))})


def chat_template(name: str) -> str:
    """A named chat template (Jinja) from templates.yaml, e.g. the paper's Llama-3 format."""
    templates = read_spec("templates")["chat"]
    if name not in templates:
        raise ConfigError(f"unknown model.chat_template '{name}'; choose from {', '.join(templates)} (or '' for the tokenizer's own)")
    return templates[name]


def gold_answer(answer: str) -> str:
    """The final answer of a reference solution: after GSM8K's '####', else the last \\boxed{}, else as is."""
    if "####" in answer:
        return answer.split("####")[-1].strip().replace(",", "")
    boxed = last_boxed(answer)
    return boxed if boxed is not None else answer.strip()


def _read_rows(spec: str, keys: tuple[str, ...], field_prefix: str) -> list[dict]:
    """Rows from a local .jsonl file, or from an HF dataset `id[:split]` (hub or its cache)."""
    path = Path(spec)
    if path.suffix == ".jsonl" or path.exists():
        if not path.exists():
            raise ConfigError(f"data file not found: {path} (fix the path in {field_prefix}_data)")
        rows = []
        for line_no, row in read_jsonl(path):
            _check_keys(row, keys, f"{path}:{line_no}", field_prefix)
            rows.append(row)
        return rows
    name, _, split = spec.partition(":")
    try:
        import datasets

        data = datasets.load_dataset(name, split=split or "train")
    except Exception as exc:  # the hub, the cache and the builder all raise their own types
        raise ConfigError(f"could not load dataset '{spec}' ({type(exc).__name__}); pass a local .jsonl in {field_prefix}_data") from None
    for k in keys:
        if k not in data.column_names:
            raise ConfigError(f"dataset '{spec}' has no column '{k}' (columns: {', '.join(data.column_names)}); set {_key_field(k, keys, field_prefix)}")
    return list(data)


def _check_keys(row: dict, keys: tuple[str, ...], where: str, field_prefix: str) -> None:
    for k in keys:
        if k not in row:
            raise ConfigError(f"{where} has no field '{k}' (fields: {', '.join(row)}); set {_key_field(k, keys, field_prefix)}")


def _key_field(key: str, keys: tuple[str, ...], field_prefix: str) -> str:
    suffix = {"task.math": ("question_key", "answer_key"), "task.if": ("prompt_key",)}[field_prefix]
    return f"{field_prefix}_{suffix[keys.index(key)]}=<column>"


def constraint_type_strata(task: TaskConfig, pools: dict[str, list[Prompt]]) -> dict[str, list[str]]:
    """Kind -> each prompt's stratum, for the kinds the task balances: the IF prompts' constraint types
    when `task.balance_if_types` (one line naming the fix when a prompt carries none)."""
    if not task.balance_if_types or "if" not in pools:
        return {}
    strata = []
    for prompt in pools["if"]:
        try:
            strata.append("+".join(sorted(json.loads(prompt.gold or "")["instruction_id_list"])))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError("task.balance_if_types needs IF prompts that carry constraints: set task.if_data=constraints "
                              "(or IFEval-style rows), or task.balance_if_types=false") from None
    return {"if": strata}


class PromptSampler:
    """Serves `prompts_per_step` prompts for step k; each kind cycles through its own reshuffled pool.

    A mixed task splits each step's prompts so that the math share is `math_fraction` on average, and
    exactly so after every few steps: step k takes floor((k+1)·n·f) - floor(k·n·f) math prompts (the
    rest IF). With 4 prompts at the paper's 2:1 that is 2, 3, 3, 2, 3, 3, ... math prompts: 8 of 12
    every 3 steps, where a fixed round(4 · 2/3) = 3 would have trained at 3:1.

    A kind given `strata` (one label per pool item) is served in rounds instead of one shuffle: each
    round takes the next item of every stratum that has one left, strata in a fresh order per round.
    The first r rounds' items hold every stratum r times (while none has run out), so which strata a
    short run trains on, and how often, no longer depends on its seed.
    """

    def __init__(self, pools: dict[str, list[Prompt]], prompts_per_step: int, math_fraction: float, seed: int,
                 strata: dict[str, list[str]] | None = None):
        self.pools = pools
        self.seed = seed
        self.per_step = prompts_per_step
        # Exact arithmetic: with floats, 12 · (2/3) floors to 7.
        self.math_fraction = Fraction(math_fraction).limit_denominator(10_000)
        self.strata = strata or {}
        for kind, labels in self.strata.items():
            assert len(labels) == len(pools[kind]), f"{kind}: one stratum per prompt"

    def counts(self, step: int) -> dict[str, tuple[int, int]]:
        """Kind -> (start, end) of its positions in its own stream at `step`: a pure function of the step."""
        if set(self.pools) != {"math", "if"}:
            return {kind: (step * self.per_step, (step + 1) * self.per_step) for kind in self.pools}
        math_before = math.floor(step * self.per_step * self.math_fraction)
        math_after = math.floor((step + 1) * self.per_step * self.math_fraction)
        if_before = step * self.per_step - math_before
        return {"math": (math_before, math_after), "if": (if_before, if_before + self.per_step - (math_after - math_before))}

    def batch(self, step: int) -> list[Prompt]:
        out = []
        for kind, (start, end) in self.counts(step).items():
            pool = self.pools[kind]
            for offset in range(start, end):
                epoch, index = divmod(offset, len(pool))
                out.append(pool[self._order(kind, epoch)[index]])
        return out

    @functools.lru_cache(maxsize=8)
    def _order(self, kind: str, epoch: int) -> list[int]:
        """The pool's order in one epoch: a function of (seed, kind, epoch) only, so resumes agree."""
        rng = random.Random(f"{self.seed}-{kind}-{epoch}")
        order = list(range(len(self.pools[kind])))
        rng.shuffle(order)
        if kind not in self.strata:
            return order
        queues: dict[str, list[int]] = {}
        for index in order:  # each stratum's items, in the shuffled order
            queues.setdefault(self.strata[kind][index], []).append(index)
        labels = sorted(queues)
        rounds = []
        while any(queues.values()):
            rng.shuffle(labels)
            rounds += [queues[label].pop(0) for label in labels if queues[label]]
        return rounds
