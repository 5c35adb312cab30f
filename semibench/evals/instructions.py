"""Held-out verifiable instruction following (`if_heldout`): the training task's constrained requests under
another seed, minus the training pool, scored by lm-eval's IFEval checkers as the reward scores them.

It measures what the verifiable IF reward trains (IFEval's constraint types on semibench's synthetic
requests), on requests no run trained on. IFEval itself stays a separate benchmark: the same checkers
on its 541 human-written prompts, in distribution for the constraint types and out of it for the prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

from semibench.constraints import Constrained, constrained_instructions, follows
from semibench.evals.data import DataMissing, Origin, Source
from semibench.evals.math import HELDOUT_SEED_OFFSET
from semibench.evals.session import GenRequest, Session, prompt_key
from semibench.tasks import CONSTRAINED


@dataclass(frozen=True)
class HeldoutInstructions:
    training_pool: int  # the training pool's size (task.num_prompts); 0 = no training pool to exclude
    per_prompt: int  # constraints per request, as in training
    data_seed: int  # the training pool's seed; held-out items come from data_seed + HELDOUT_SEED_OFFSET
    origin: str  # where the spec came from, recorded in the result


def heldout_spec(origin: Origin | None) -> HeldoutInstructions:
    """The training source held out from: the origin's (a run's config.json, a grid's seed.json), else one constraint a request."""
    if origin is None:
        return HeldoutInstructions(0, 1, 0, "settings")
    task = origin.config.task
    if origin.is_run and task.name != "math" and task.if_data != CONSTRAINED:
        raise DataMissing(f"if_heldout: the run trained on task.if_data={task.if_data or 'synthetic'}, which carries no constraints; "
                          "evaluate ifeval, or train with task.if_data=constraints")
    return HeldoutInstructions(task.num_prompts, task.if_constraints_per_prompt, task.data_seed, str(origin.path))


def heldout_items(spec: HeldoutInstructions, size: int) -> list[Constrained]:
    """`size` constrained requests drawn under the held-out seed whose text is not in the training pool."""
    pool = {c.text for c in constrained_instructions(spec.training_pool, spec.data_seed, spec.per_prompt)} if spec.training_pool else set()
    drawn = constrained_instructions(size + len(pool), spec.data_seed + HELDOUT_SEED_OFFSET, spec.per_prompt)
    items = [c for c in drawn if c.text not in pool][:size]
    if len(items) < size:
        raise DataMissing(f"if_heldout: only {len(items)} constrained requests outside the training pool (asked for {size})")
    return items


def run_if_heldout(session: Session, bench: str, source: Source) -> dict:
    """Every sample's prompt-level strict score (IFEval's headline) per item; instruction-level beside it."""
    from semibench.evals.scoring.samples import avg_at_n

    s = session.settings
    spec = heldout_spec(session.origin)
    items = heldout_items(spec, s.if_heldout_items)
    items = items[: s.limit] if s.limit else items
    requests = [GenRequest(prompt_key(p), p) for p in (session.chat(c.text) for c in items)]
    store = session.store(bench)
    completions = session.complete(store, requests, bench)
    followed = [[follows(c.spec, text) for text in cs] for c, cs in zip(items, completions)]
    scores = [[float(all(f)) for f in per_sample] for per_sample in followed]
    store.rewrite([{**store.rows[r.key], "instruction": c.text, "constraints": c.spec, "completions": cs, "followed": fs, "scores": sc}
                   for r, c, cs, fs, sc in zip(requests, items, completions, followed, scores)])
    score, stderr = avg_at_n(scores)
    flat = [x for per_sample in followed for f in per_sample for x in f]
    return {"score": score, "stderr": stderr, "primary_metric": "prompt_level_strict", "n": len(items),
            "metrics": {"prompt_level_strict": score, "inst_level_strict": 100 * sum(flat) / len(flat)},
            "data": f"constrained requests (from {spec.origin}), data seed {spec.data_seed}+{HELDOUT_SEED_OFFSET}", "notes": []}
