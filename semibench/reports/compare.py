"""`semibench compare A B`: two evaluated checkpoints, paired item by item, from their eval files only.

A and B may be eval directories (`runs/<id>/eval/step_N`, `<checkpoint>/eval`), run directories (their
newest evaluated checkpoint) or checkpoint directories (their eval directory). For every benchmark
both sides scored per sample (`<bench>.samples.jsonl` rows with `scores`), items are matched by
their identity (the math question, lm-eval's doc id, else the prompt) and compared with
`semibench.stats.compare_scores`. Different item sets are refused with one line naming the mismatch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semibench.config import ConfigError
from semibench.runs import RunDir
from semibench.stats import ItemMismatch, compare_scores, verdict


def eval_dir_of(path: Path) -> Path:
    """The eval directory a user's path stands for (see the module docstring)."""
    path = Path(path)
    if any(path.glob("*.samples.jsonl")):
        return path
    evaluated = sorted(p for p in RunDir.at(path).evals.glob("step_*") if any(p.glob("*.samples.jsonl")))
    if evaluated:  # a run directory: its newest evaluated checkpoint
        return evaluated[-1]
    if any((path / "eval").glob("*.samples.jsonl")):  # a checkpoint (or seed row) directory
        return path / "eval"
    raise ConfigError(f"{path} holds no evaluation with per-sample scores; run `semibench eval` on it first")


def item_scores(eval_dir: Path, bench: str) -> dict[str, list[float]]:
    """Item identity -> its per-sample scores, from `<bench>.samples.jsonl`."""
    from semibench.datafiles import read_jsonl

    out: dict[str, list[float]] = {}
    for _, row in read_jsonl(Path(eval_dir) / f"{bench}.samples.jsonl"):  # one line naming a malformed row
        if "scores" not in row:
            continue  # a prompt generated but not yet scored (a killed eval)
        identity = item_identity(row)
        out[identity] = [float(s) for s in row["scores"]]
    return out


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
        keys = sorted(items_a)
        samples = {len(items_a[k]) for k in keys} | {len(items_b[k]) for k in keys}
        if len(samples) != 1:
            raise ConfigError(f"{bench}: items have different numbers of samples ({sorted(samples)}); compare evaluations with one samples-per-prompt")
        try:
            result = compare_scores([items_a[k] for k in keys], [items_b[k] for k in keys], seed=seed)
        except ItemMismatch as exc:
            raise ConfigError(f"{bench}: {exc}") from None
        score_a = 100 * sum(sum(items_a[k]) / len(items_a[k]) for k in keys) / len(keys)
        score_b = 100 * sum(sum(items_b[k]) / len(items_b[k]) for k in keys) / len(keys)
        rows.append({"benchmark": bench, "a": str(dir_a), "b": str(dir_b), "score_a": score_a, "score_b": score_b,
                     "samples_per_item": samples.pop(), **result, "verdict": verdict(result)})
    return rows
