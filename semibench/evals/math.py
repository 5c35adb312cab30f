"""Math scored by our Math-Verify pool: AMC23, Math500 as the paper scored it, the paper's NuminaMath splits
and held-out procedural math.

Each item is prompted with its task's math template (the paper's for AMC23 and NuminaMath), every
sample gets a binary Math-Verify score, and the result is avg@N.
"""

from __future__ import annotations

from dataclasses import dataclass

from semibench.benchmarks import BENCHMARKS
from semibench.config import ConfigError, TaskConfig
from semibench.evals.data import NUMINA_SPLIT, DataMissing, Origin, Source, read_jsonl
from semibench.evals.session import GenRequest, Session, prompt_key

HELDOUT_SEED_OFFSET = 1_000_000  # reasoning-gym item i is Random(seed + i): held-out streams start this far into the data seed's block
HELDOUT_MAX_CANDIDATES = 20_000


def numina_items(bench: str, source: Source) -> list[tuple[str, str]]:
    """(problem, gold answer) of the filtered NuminaMath-CoT's held-out test or validation split."""
    from semibench import paper_data

    try:
        problems = paper_data.numina(NUMINA_SPLIT[bench], source.dataset)
    except ConfigError as exc:  # a malformed row, a file too small to hold out 2 x 1,980 problems
        raise DataMissing(f"{bench}: {exc}") from None
    return [(p.problem, p.answer) for p in problems]


def file_items(bench: str, source: Source) -> list[tuple[str, str]]:
    """(problem, gold answer) pairs of a one-file benchmark (AMC23, MATH-500); integral float answers (27.0) become '27'."""
    if source.where == "local":
        rows = read_jsonl(source.path)
    else:
        import datasets

        path, name, split = BENCHMARKS[bench].hub
        rows = list(datasets.load_dataset(path, name, split=split))
    items = []
    for i, row in enumerate(rows):
        problem, answer = row.get("problem", row.get("question")), row.get("answer")
        if problem is None or answer is None:
            raise DataMissing(f"{bench} row {i} has no problem/answer fields (fields: {', '.join(row)}); pass the {BENCHMARKS[bench].local_files[0]} it needs")
        if isinstance(answer, float) and answer.is_integer():
            answer = int(answer)
        items.append((str(problem), str(answer)))
    return items


@dataclass(frozen=True)
class HeldoutSpec:
    task: TaskConfig  # reasoning_gym sources and math_template
    data_seed: int  # the training pool's seed (task.data_seed); held-out items come from its block + HELDOUT_SEED_OFFSET
    exclude_training_pool: bool  # a run checkpoint: drop every question its training pool holds
    origin: str  # where the spec came from, recorded in the result
    literal_numbers: bool = True  # scored as the run's reward scores (reward.math_literal_numbers)


def heldout_spec(origin: Origin | None, sources: tuple[str, ...], template: str) -> HeldoutSpec:
    """The training source held out from: the origin's (a run's config.json, a grid's seed.json), else the settings'."""
    from semibench import config

    if origin is not None and origin.is_run and origin.config.task.math_data:
        raise DataMissing(f"math_heldout: the run trained on task.math_data={origin.config.task.math_data}, not procedural math; "
                          "evaluate numina_test (numina) or gsm8k/math500 instead")
    if origin is not None:
        return HeldoutSpec(origin.config.task, origin.config.task.data_seed, True, str(origin.path), origin.config.reward.math_literal_numbers)
    task = config.apply_overrides(config.RunConfig(), {"task.reasoning_gym": sources, "task.math_template": template}).task
    return HeldoutSpec(task, 0, False, "settings")


def heldout_item_seed(data_seed: int) -> int:
    """The first reasoning-gym item seed of `data_seed`'s held-out stream (tasks.reasoning_gym_seed)."""
    from semibench.tasks import reasoning_gym_seed

    return reasoning_gym_seed(data_seed) + HELDOUT_SEED_OFFSET


def heldout_items(spec: HeldoutSpec, size: int) -> tuple[list[tuple[str, str]], list[str]]:
    """`size` procedural problems (question, answer) from the training source under another seed, none in the
    training pool; split evenly over the sources. Returns the items and notes (e.g. a source that ran short)."""
    import reasoning_gym

    from semibench.datafiles import read_spec
    from semibench.tasks import _procedural_math
    pool = {q for q, _, _ in _procedural_math(spec.task, spec.data_seed)} if spec.exclude_training_pool else set()
    sources = read_spec("sources")["procedural_math"]
    names = spec.task.reasoning_gym
    items, notes = [], []
    for k, name in enumerate(names):
        want = size // len(names) + (k < size % len(names))
        params = dict(sources[name])
        dataset = reasoning_gym.create_dataset(params.pop("dataset"), size=HELDOUT_MAX_CANDIDATES, seed=heldout_item_seed(spec.data_seed), **params)
        seen: set[str] = set()
        for i in range(HELDOUT_MAX_CANDIDATES):
            if len(seen) == want:
                break
            item = dataset[i]
            if item["question"] not in pool and item["question"] not in seen:
                seen.add(item["question"])
                items.append((item["question"], str(item["answer"])))
        if len(seen) < want:
            notes.append(f"{name}: only {len(seen)} distinct questions outside the training pool (asked for {want})")
    if not items:
        raise DataMissing(f"math_heldout: every question of {', '.join(names)} is in the training pool; train on a larger source")
    return items, notes


def run_math(session: Session, bench: str, source: Source) -> dict:
    """AMC23, NuminaMath test/valid or held-out procedural math: the task's prompt template, binary Math-Verify per sample, avg@N."""
    from semibench.datafiles import read_spec
    from semibench.evals.scoring.samples import avg_at_n

    s, notes = session.settings, []
    literal = False  # the paper's benchmarks are scored as the paper's verifier scores them
    if bench in ("amc23", "math500_paper"):  # the paper's prompt, as its Tables 1 and 3
        items, template, origin = file_items(bench, source), "paper", source.description
    elif bench in NUMINA_SPLIT:  # the paper's prompt, as its NuminaMath column and checkpoint selection
        items, template, origin = numina_items(bench, source), "paper", source.description
    else:
        spec = heldout_spec(session.origin, s.heldout_sources, s.heldout_template)
        items, notes = heldout_items(spec, s.heldout_size)
        template, origin = spec.task.math_template, f"{', '.join(spec.task.reasoning_gym)} (from {spec.origin}), data seed {spec.data_seed} (item seeds from {heldout_item_seed(spec.data_seed)})"
        literal = spec.literal_numbers
    items = items[: s.limit] if s.limit else items
    templates = read_spec("templates")["math"]
    if template not in templates:
        raise ConfigError(f"unknown math template '{template}'; choose from {', '.join(templates)}")
    requests = [GenRequest(prompt_key(p), p) for p in (session.chat(templates[template].format(problem=q)) for q, _ in items)]
    store = session.store(bench)
    completions = session.complete(store, requests, bench)
    flat = session.verifier([c for cs in completions for c in cs], [gold for (_, gold), cs in zip(items, completions) for _ in cs], literal_numbers=literal)
    n = s.samples_per_prompt
    scores = [flat[i * n : (i + 1) * n] for i in range(len(items))]
    store.rewrite([{**store.rows[r.key], "question": q, "gold": gold, "completions": cs, "scores": sc}
                   for r, (q, gold), cs, sc in zip(requests, items, completions, scores)])
    score, stderr = avg_at_n(scores)
    metrics = {"math_verify": score}
    if n > 1:
        metrics[f"pass_at_{n}"] = 100 * sum(max(sc) for sc in scores) / len(scores)
    return {"score": score, "stderr": stderr, "primary_metric": "math_verify", "n": len(items), "metrics": metrics,
            "template": template, "data": origin, "notes": notes, "literal_numbers": literal}
