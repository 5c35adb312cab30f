"""`semibench compare A B`: two evaluated checkpoints, paired item by item, from their eval files only.

A and B may be eval directories (`runs/<id>/eval/step_N`, `<checkpoint>/eval`), run directories (the
checkpoint the tables show: the selected one where `semibench select` recorded one, else the newest
evaluated) or checkpoint directories (their eval directory). For every benchmark both sides scored
per sample (`<bench>.samples.jsonl` rows with `scores`), items are matched by their identity (the
math question, lm-eval's doc id, else the prompt; a repeated identity counts as its own item) and
compared with `semibench.stats.compare_scores`, one test per benchmark. Items a judge could not
score on either side (`scores: [null]`) are dropped from both, as arena-hard-auto drops them.
Different item sets are refused with one line naming the mismatch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semibench.config import ConfigError
from semibench.runs import RunDir
from semibench.stats import ItemMismatch, compare_scores


def eval_dir_of(path: Path) -> Path:
    """The eval directory a user's path stands for (see the module docstring)."""
    import json

    path = Path(path)
    if any(path.glob("*.samples.jsonl")):
        return path
    run = RunDir.at(path)
    if run.selection_path.is_file():  # the checkpoint a validation score picked, as the tables show it
        selected = run.eval_dir(int(json.loads(run.selection_path.read_text())["step"]))
        if any(selected.glob("*.samples.jsonl")):
            return selected
        raise ConfigError(f"{path}: the selected checkpoint ({run.selection_path}) has no evaluation with per-sample scores; "
                          f"run `semibench eval` on it first")
    evaluated = sorted(p for p in run.evals.glob("step_*") if any(p.glob("*.samples.jsonl")))
    if evaluated:  # a run directory: its newest evaluated checkpoint
        return evaluated[-1]
    if any((path / "eval").glob("*.samples.jsonl")):  # a checkpoint (or seed row) directory
        return path / "eval"
    raise ConfigError(f"{path} holds no evaluation with per-sample scores; run `semibench eval` on it first")


def item_scores(eval_dir: Path, bench: str) -> dict[str, list[float] | None]:
    """Item identity -> its per-sample scores, from `<bench>.samples.jsonl`; None where a sample has no
    score (a judge that gave no usable verdict). An identity seen again is another item ("<id> #2"), so
    every row counts once and a side's mean is its file's."""
    from semibench.datafiles import read_jsonl

    out: dict[str, list[float] | None] = {}
    for _, row in read_jsonl(Path(eval_dir) / f"{bench}.samples.jsonl"):  # one line naming a malformed row
        if "scores" not in row:
            continue  # a prompt generated but not yet scored (a killed eval)
        identity = item_identity(row)
        repeat = 1
        while (f"{identity} #{repeat}" if repeat > 1 else identity) in out:
            repeat += 1
        scores = row["scores"]
        out[f"{identity} #{repeat}" if repeat > 1 else identity] = None if any(s is None for s in scores) else [float(s) for s in scores]
    return out


def scored_items(*sides: dict[str, list[float] | None]) -> list[str]:
    """The items every side scored (sorted): those with an unscored sample on any side are dropped."""
    return sorted(k for k in sides[0] if all(side.get(k) is not None for side in sides))


def is_untrained(eval_dir: Path) -> bool:
    """A grid's seed row (`runs/seed-<model>/eval`, beside its seed.json): the model no training seed made."""
    return (Path(eval_dir).parent / "seed.json").is_file()


def item_identity(row: dict) -> str:
    """What an item is, independent of how it was prompted: the question (math), the instruction
    (AlpacaEval, paired per instruction), the question id (Arena-Hard, per question), lm-eval's doc
    id; else the prompt's hash."""
    for field in ("question", "instruction", "uid"):
        if field in row:
            return f"{field} {row[field]}" if field == "uid" else str(row[field])
    return f"doc {row['doc_id']}" if "doc_id" in row else row["key"]


def benchmarks_in(eval_dir: Path) -> list[str]:
    """Result stems with per-item scores; a judged benchmark's shared generations (`alpaca_eval.samples.jsonl`,
    no scores: the judge's file `alpaca_eval--<judge>` holds them) are not one."""
    from semibench.datafiles import read_jsonl

    def scored(path: Path) -> bool:
        return any("scores" in row for _, row in read_jsonl(path))

    return sorted(p.name.removesuffix(".samples.jsonl") for p in Path(eval_dir).glob("*.samples.jsonl") if scored(p))


def compare_evals(a: Path, b: Path, benchmarks: list[str] | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """One row per benchmark both sides scored: scores, delta, CI, p-value, MDE, verdict."""
    dir_a, dir_b = eval_dir_of(a), eval_dir_of(b)
    shared = [x for x in benchmarks_in(dir_a) if x in benchmarks_in(dir_b)]
    chosen = benchmarks or shared
    missing = [x for x in chosen if x not in shared]
    if missing or not chosen:
        raise ConfigError(f"not scored on both sides: {', '.join(missing) or 'no benchmark'} ({dir_a} has {', '.join(benchmarks_in(dir_a)) or 'none'}; "
                          f"{dir_b} has {', '.join(benchmarks_in(dir_b)) or 'none'})")
    rows = []
    for bench in chosen:
        items_a, items_b = item_scores(dir_a, bench), item_scores(dir_b, bench)
        if items_a.keys() != items_b.keys():
            only_a, only_b = len(items_a.keys() - items_b.keys()), len(items_b.keys() - items_a.keys())
            raise ConfigError(f"{bench}: the sides scored different items ({only_a} only in A, {only_b} only in B, {len(items_a.keys() & items_b.keys())} shared); "
                              "compare evaluations made with the same items (same data, limit and held-out source)")
        keys = scored_items(items_a, items_b)
        if not keys:
            raise ConfigError(f"{bench}: no item was scored on both sides ({len(items_a)} items, every one unscored on a side)")
        samples = {len(items_a[k]) for k in keys} | {len(items_b[k]) for k in keys}
        if len(samples) != 1:
            raise ConfigError(f"{bench}: items have different numbers of samples ({sorted(samples)}); compare evaluations with one samples-per-prompt")
        try:
            result = compare_scores([items_a[k] for k in keys], [items_b[k] for k in keys], seed=seed,
                                    untrained=(is_untrained(dir_a), is_untrained(dir_b)))
        except ItemMismatch as exc:
            raise ConfigError(f"{bench}: {exc}") from None
        score_a = 100 * sum(sum(items_a[k]) / len(items_a[k]) for k in keys) / len(keys)
        score_b = 100 * sum(sum(items_b[k]) / len(items_b[k]) for k in keys) / len(keys)
        rows.append({"benchmark": bench, "a": str(dir_a), "b": str(dir_b), "score_a": score_a, "score_b": score_b,
                     "samples_per_item": samples.pop(), "items_dropped": len(items_a) - len(keys), **result})
    return rows


def format_p(p: float | None) -> str:
    """A p-value for a table: 3 significant digits; never a bare 0 (what an underflow would print)."""
    if p is None or p != p:
        return "–"
    return "<1e-6" if p < 1e-6 else f"{p:.3g}"


def short_test_name(method: str) -> str:
    """A short name for the test `compare_scores` chose, from its `method` (the verdicts table and figure show it)."""
    for prefix, name in (("paired t-test over training seeds", "paired seeds"), ("Welch", "Welch seeds"),
                         ("exact McNemar", "McNemar items"), ("paired t-test over items", "paired items")):
        if method.startswith(prefix):
            return name
    return "–"


def json_without_nan(rows: list[dict[str, Any]]) -> str:
    """Rows as strict JSON: NaN and infinities (no test could be made) become null, which every parser reads."""
    import json
    import math

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(rows), allow_nan=False)
