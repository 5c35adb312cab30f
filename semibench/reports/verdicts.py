"""The comparisons a grid was built to make, each paired and seed-aware: `runs/tables/verdicts.md` + `.csv`.

For every benchmark the runs scored: each regime against the seed model, the regimes of one
objective against each other, and online DPO against GRPO, within a task. Runs that differ only in
`train.seed` form one arm: their per-item scores stack to [training seeds, items, samples] and
`semibench.stats.compare_scores` makes one test per comparison: paired over the training seeds two
arms share (a grid gives every arm the same seeds, and a seed is a block: it fixes the prompts, the
generator's seed and the pairs), Welch over training seeds where fewer than 2 are shared or one side
is the seed model. The comparisons of one benchmark within one task are one family: their p-values
are adjusted together (Holm by default, `adjust_p_values`) and the adjusted p decides. Reads eval
files only.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from semibench.reports.compare import benchmarks_in, format_p, item_scores, scored_items, short_test_name
from semibench.reports.results import Run, read_runs
from semibench.reports.tables import arm_key, method_label
from semibench.reports.verdict_figure import draw_verdicts
from semibench.runs import RunDir, atomic_write_text, run_id
from semibench.stats import ALPHA, MIN_SEEDS, adjust_p_values, compare_scores, seeds_for_mde, verdict

COLUMNS = ["task", "benchmark", "a", "b", "delta", "ci_lower", "ci_upper", "p_value", "p_adjusted", "family_size", "adjustment", "mde",
           "n_items", "seeds_a", "seeds_b", "verdict", "method", "target_mde", "seeds_for_target_mde", "positive_control"]
ADJUSTMENT = "holm"
# Points. The planning column: training seeds an arm for the MDE to reach this, read from the grid's own
# variances, so a small grid run as a pilot says what the real one needs (`semibench verdicts --target-mde`).
TARGET_MDE = 4.0
MAX_SEEDS = 100
logger = logging.getLogger(__name__)


@dataclass
class Arm:
    label: str
    task: str  # "" for the seed model
    objective: str
    sync_every: int | None
    eval_dirs: dict[int | None, Path]  # training seed -> its final eval dir; the seed model's one dir under None

    @property
    def untrained(self) -> bool:
        return not self.task  # the seed model: no training seed to vary

    @property
    def seeds(self) -> list[int]:
        """The training seeds, ascending: the order every side's scores stack in, so two arms with the same
        seeds line up seed by seed by construction."""
        return sorted(s for s in self.eval_dirs if s is not None)

    def dirs(self) -> list[Path]:
        """The eval dirs in the order of `seeds` (the seed model's one dir)."""
        return list(self.eval_dirs.values()) if self.untrained else [self.eval_dirs[s] for s in self.seeds]

    def shared_seeds(self, other: Arm) -> list[int]:
        """The training seeds both trained arms ran: the blocks a paired comparison uses (none against the seed model)."""
        return [] if self.untrained or other.untrained else sorted(set(self.seeds) & set(other.seeds))

    def only(self, seeds: list[int]) -> Arm:
        """The same arm restricted to `seeds` (how a paired comparison leaves out a seed one side has not run)."""
        return replace(self, eval_dirs={s: self.eval_dirs[s] for s in seeds})


def arms(runs: list[Run]) -> list[Arm]:
    """Runs grouped by their run id without the training seed (so `log`, which changes no numerics, does not
    split an arm); the seed model is its own arm. A run directory that repeats another's config and seed (a
    copy) is counted once, with a warning: the one named by its run id is kept."""
    groups: dict[str, Arm] = {}
    kept: dict[tuple[str, int], Run] = {}
    for run in runs:
        if run.is_seed:
            if (run.path / "eval").is_dir():  # a seed row's eval dir holds the results themselves
                groups[run.id] = Arm(method_label(run), "", "", None, {None: run.path / "eval"})
            continue
        final = RunDir.at(run.path).eval_dir(run.report_step)  # the checkpoint the tables show
        if not run.done or not final.is_dir():
            continue
        cfg, seed = run.config, run.config.train.seed
        key = arm_key(run)
        arm = groups.setdefault(key, Arm(method_label(run), cfg.task.name, cfg.loss.objective, cfg.train.sync_every, {}))
        if (key, seed) in kept:
            first = kept[key, seed]
            keep, drop = (run, first) if run.path.name == run_id(cfg) != first.path.name else (first, run)
            logger.warning(f"verdicts: {drop.path} repeats {keep.path} (the same config and train.seed {seed}): counted once, "
                           f"as {keep.path.name}; remove the copy")
            if keep is first:
                continue
        kept[key, seed] = run
        arm.eval_dirs[seed] = final
    return list(groups.values())


def planned_pairs(all_arms: list[Arm]) -> list[tuple[Arm, Arm]]:
    """(A, B) pairs, A the more online or the trained side: every arm against the seed model, the regimes of
    one objective against each other, and GRPO against the online arm of DPO or GroupDPO (the one-pair
    and every-pair uses of the same samples)."""
    seeds = [a for a in all_arms if not a.task]
    trained = [a for a in all_arms if a.task]
    pairs = [(a, s) for a in trained for s in seeds]
    order = lambda a: -1e18 if a.sync_every is None else -a.sync_every  # noqa: E731  offline first, online last
    for x, y in itertools.combinations(trained, 2):
        if x.task != y.task:
            continue
        if x.objective == y.objective:
            pairs.append((x, y) if order(x) > order(y) else (y, x))
        elif {x.objective, y.objective} in ({"dpo", "grpo"}, {"group_dpo", "grpo"}) and x.sync_every == y.sync_every == 1:
            pairs.append((x, y) if x.objective == "grpo" else (y, x))
    return pairs


def _stacked(arm: Arm, bench: str) -> dict[str, list[list[float]]] | None:
    """Item identity -> per-seed sample scores, when every seed of the arm scored the same items. Seeds that
    drew different numbers of samples per item contribute their item means (one value per item each)."""
    per_seed = []
    for eval_dir in arm.dirs():
        if not (eval_dir / f"{bench}.samples.jsonl").is_file():
            return None
        per_seed.append(item_scores(eval_dir, bench))
    keys = per_seed[0].keys()
    if any(s.keys() != keys for s in per_seed):
        return None
    stacked = {k: [s[k] for s in per_seed] for k in keys}
    lengths = {len(x) for seeds in stacked.values() for x in seeds if x is not None}
    if len(lengths) > 1:
        stacked = {k: [None if x is None else [sum(x) / len(x)] for x in seeds] for k, seeds in stacked.items()}
    return stacked


def compare_arms(a: Arm, b: Arm, bench: str, seed: int = 0) -> dict[str, Any] | None:
    """One test of A against B on one benchmark (raw p; `verdict_rows` adjusts it within its family)."""
    shared = a.shared_seeds(b)
    paired = len(shared) >= MIN_SEEDS
    unpaired = len(a.seeds) + len(b.seeds) - 2 * len(shared) if paired else 0  # e.g. a seed one arm has not finished
    if paired:  # both sides now stack the same seeds, ascending: seed k of each is the same training seed
        a, b = a.only(shared), b.only(shared)
    scores_a, scores_b = _stacked(a, bench), _stacked(b, bench)
    if scores_a is None or scores_b is None:
        return None
    row = {"task": a.task or b.task, "benchmark": bench, "a": a.label, "b": b.label, "seeds_a": len(a.eval_dirs), "seeds_b": len(b.eval_dirs),
           "against_seed_model": b.untrained}
    if scores_a.keys() != scores_b.keys():
        return row | {"verdict": "not compared", "method": "the two sides scored different items"}
    # Items a judge left unscored in any seed of either side are dropped from both (arena-hard-auto drops them).
    usable = lambda stacked: {k: (None if any(x is None for x in seeds) else seeds) for k, seeds in stacked.items()}  # noqa: E731
    keys = scored_items(usable(scores_a), usable(scores_b))
    dropped = len(scores_a) - len(keys)
    if len({len(x) for k in keys for x in scores_a[k] + scores_b[k]}) > 1:  # the sides drew different samples per item
        scores_a, scores_b = ({k: [[sum(x) / len(x)] for x in s[k]] for k in keys} for s in (scores_a, scores_b))
    # {item: [seeds][samples]} -> [seeds, items, samples], items in one order on both sides
    a_scores, b_scores = (np.array([scores[k] for k in keys], dtype=float).transpose(1, 0, 2) for scores in (scores_a, scores_b))
    result = compare_scores(a_scores, b_scores, seed=seed, untrained=(a.untrained, b.untrained), paired_seeds=paired)
    if unpaired:
        result["method"] += f"; {unpaired} run(s) of a seed the other arm did not run left out"
    return row | result | {"items_dropped": dropped, "seeds_unpaired": unpaired}


def planning(row: dict[str, Any], target_mde: float) -> dict[str, Any]:
    """Training seeds an arm for this comparison's MDE to reach `target_mde`, from its own variances (None: not
    within MAX_SEEDS); only between trained arms with seeds (the regime comparisons): against the seed model the
    bar is the size of the gain, and its items' error, which seeds do not shrink, puts small targets out of reach."""
    if "seed_var" not in row or row["fixed_var"] > 0:
        return {"target_mde": None, "seeds_for_target_mde": None}  # every row has every column (a notebook's frame, the JSON)
    return {"target_mde": target_mde, "seeds_for_target_mde": seeds_for_mde(target_mde, row["seed_var"], max_seeds=MAX_SEEDS)}


def adjust_families(rows: list[dict[str, Any]], method: str = ADJUSTMENT) -> list[dict[str, Any]]:
    """Adjust every (task, benchmark) family's p-values together and let the adjusted p decide its verdicts."""
    out = [dict(r) for r in rows]
    families: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in out:
        if "p_value" in r:
            families.setdefault((r["task"], r["benchmark"]), []).append(r)
    for family in families.values():
        tested = sum(1 for r in family if r["p_value"] == r["p_value"])
        for r, adjusted in zip(family, adjust_p_values([r["p_value"] for r in family], method)):
            r |= {"p_adjusted": adjusted, "family_size": tested, "adjustment": method}
            r["verdict"] = verdict(r, "A", "B")
        shown = any(is_control(r) and r["verdict"] == "A better" for r in family)
        for r in family:
            r["positive_control"] = None if is_control(r) else shown
    return out


def is_control(row: dict[str, Any]) -> bool:
    """A trained arm against the seed model: the positive control of its family."""
    return bool(row.get("against_seed_model"))


def control_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per family: whether training beat the seed model there (resolved after the family's adjustment, with
    measured seed variance), and so whether its regime verdicts compare arms that training moved."""
    lines = []
    for task, bench in sorted({(r["task"], r["benchmark"]) for r in rows if "p_value" in r}):
        controls = [r for r in rows if (r["task"], r["benchmark"]) == (task, bench) and is_control(r) and "delta" in r]
        if not controls:
            continue
        won = [r for r in controls if r["verdict"] == "A better"]
        if won:
            best = max(won, key=lambda r: r["delta"])
            lines.append(f"- {task}/{bench}: **shown** ({len(won)} of {len(controls)} arms beat the seed model; the largest gain: {best['a']} "
                         f"{best['delta']:+.2f}, p (Holm) {format_p(best.get('p_adjusted'))}).")
        else:
            lines.append(f"- {task}/{bench}: **not shown**: no arm beats the seed model, resolved, so its regime verdicts compare arms "
                         "that training did not measurably move: a \"not resolved\" there means no signal, not no difference.")
    return lines


def verdict_rows(runs_root: Path, seed: int = 0, target_mde: float = TARGET_MDE) -> list[dict[str, Any]]:
    all_arms = arms(read_runs(runs_root))
    rows = []
    for a, b in planned_pairs(all_arms):
        benches = sorted({bench for d in a.dirs() + b.dirs() for bench in benchmarks_in(d)})
        for bench in benches:
            row = compare_arms(a, b, bench, seed)
            if row is not None:
                rows.append(row | planning(row, target_mde))
    return adjust_families(sorted(rows, key=lambda r: (r["task"], r["benchmark"])))  # stable: the planned order within a benchmark


def _fmt(value: Any, spec: str = "+.2f") -> str:
    return "" if value is None else format(value, spec) if isinstance(value, float) else str(value)


def to_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["### Verdicts: one test per comparison, family-wise adjusted", "",
             "| task | benchmark | A | B | seeds A/B | test | A − B | 95% CI | p | p (Holm) | MDE | seeds for MDE ≤ target | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f"[{_fmt(r.get('ci_lower'))}, {_fmt(r.get('ci_upper'))}]" if r.get("ci_lower") is not None else "–"
        lines.append(f"| {r['task']} | {r['benchmark']} | {r['a']} | {r['b']} | {r['seeds_a']}/{r['seeds_b']} | {short_test_name(r.get('method', ''))} | "
                     f"{_fmt(r.get('delta'))} | {ci} | {format_p(r.get('p_value'))} | {format_p(r.get('p_adjusted'))} | {_fmt(r.get('mde'), '.2f')} | {_seeds(r)} | {r['verdict']} |")
    families = sorted({(r["task"], r["benchmark"], r.get("family_size")) for r in rows if r.get("family_size")})
    targets = sorted({r["target_mde"] for r in rows if r.get("target_mde") is not None})
    methods = sorted({r["method"] for r in rows if r.get("method")})
    lines += ["", "Points (x 100), items' samples averaged first. Each row is one test, its p and 95% CI from the same inversion: "
              + "; ".join(methods) + ". The seed model has no training seed; a trained arm with several seeds is tested over them, "
              "paired over the training seeds it shares with the other arm (the grid gives every arm the same seeds: a seed "
              "fixes the prompt order, the generator's seed and the pairs' draw) and Welch otherwise, so seed-to-seed variance is in "
              "its CI, p and MDE (minimum detectable effect, 80% power, alpha 0.05). "
              f"**Family**: the comparisons the grid was built for on one benchmark within one task ("
              + ", ".join(f"{task or '–'}/{bench}: {n}" for task, bench, n in families)
              + f" tests); p (Holm) is Holm's step-down adjustment over the family (statsmodels), and a verdict needs it below {ALPHA}. "
              f"The CI is per comparison, not adjusted. \"(1 training seed)\": a trained side had fewer than {MIN_SEEDS} training "
              "seeds, so seed-to-seed variance was not measured and another seed may undo the verdict."]
    controls = control_lines(rows)
    if controls:
        lines += ["", "**Positive control** (a trained arm beats the seed model, resolved, before its regimes are compared):"] + controls
    if targets:
        lines += ["", f"**Seeds for MDE ≤ {', '.join(f'{t:g}' for t in targets)} points**: the training seeds an arm that comparison would "
                  "need for its MDE to reach the target, from this grid's own variances (statsmodels' t-test power solved for the "
                  f"number of seeds; \"> {MAX_SEEDS}\": out of reach), for comparisons between trained arms. Read from a small "
                  "grid run as a pilot, it sizes the real one."]
    return "\n".join(lines) + "\n"


def _seeds(row: dict[str, Any]) -> str:
    if row.get("target_mde") is None:
        return "–"
    n = row["seeds_for_target_mde"]
    return f"> {MAX_SEEDS}" if n is None else str(n)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: (f"{r[c]:.4f}" if isinstance(r.get(c), float) else r.get(c, "")) for c in COLUMNS})
    return buffer.getvalue()


def write_verdicts(runs_root: Path, out_dir: Path, target_mde: float = TARGET_MDE) -> dict[str, Path]:
    """verdicts.md, .csv and the figure .png; none of them left from an earlier call when there is nothing to compare."""
    out_dir = Path(out_dir)
    rows = verdict_rows(runs_root, target_mde=target_mde)
    if not rows:
        for suffix in ("md", "csv", "png"):
            (out_dir / f"verdicts.{suffix}").unlink(missing_ok=True)
        return {}
    atomic_write_text(out_dir / "verdicts.md", to_markdown(rows))
    atomic_write_text(out_dir / "verdicts.csv", to_csv(rows))
    written, figure = {"verdicts": out_dir / "verdicts.md"}, out_dir / "verdicts.png"
    try:
        drawn = draw_verdicts(rows, figure)
    except Exception as exc:  # noqa: BLE001  a figure must never cost the verdicts at the end of an hours-long grid
        logger.warning(f"verdicts: figure not drawn ({type(exc).__name__}: {exc}); verdicts.md and .csv are complete")
        drawn = 0
    if drawn:
        written["figure"] = figure
    else:
        figure.unlink(missing_ok=True)  # never an older figure beside this table
    return written


def replication(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> dict[str, Any]:
    """How the verdicts of one grid hold in another (other training prompts and held-out items, another
    machine): comparisons matched by (task, benchmark, A, B). Counts the first grid's resolved verdicts
    the second resolves the same way, leaves unresolved, or reverses (a flip: the worst outcome)."""
    key = lambda r: (r["task"], r["benchmark"], r["a"], r["b"])  # noqa: E731
    second_by_key = {key(r): r for r in second}
    rows, counts = [], {"resolved_first": 0, "same": 0, "unresolved_second": 0, "flipped": 0, "resolved_second_only": 0, "matched": 0}
    for r in first:
        other = second_by_key.get(key(r))
        if other is None or "delta" not in r or "delta" not in other:
            continue
        counts["matched"] += 1
        resolved, resolved_other = r["verdict"] != "not resolved", other["verdict"] != "not resolved"
        if resolved:
            counts["resolved_first"] += 1
            same_side = r["verdict"].split(" ")[0] == other["verdict"].split(" ")[0]
            outcome = "same" if resolved_other and same_side else "flipped" if resolved_other else "unresolved_second"
            counts[outcome] += 1
        else:
            outcome = "resolved_second_only" if resolved_other else "unresolved_both"
            counts["resolved_second_only"] += resolved_other
        rows.append({**{k: r[k] for k in ("task", "benchmark", "a", "b")}, "delta_first": r["delta"], "delta_second": other["delta"],
                     "verdict_first": r["verdict"], "verdict_second": other["verdict"], "outcome": outcome,
                     "sign_agrees": (r["delta"] > 0) == (other["delta"] > 0) or r["delta"] == other["delta"] == 0})
    return counts | {"sign_disagreements": sum(not r["sign_agrees"] for r in rows), "rows": rows}


REPLICATION_COLUMNS = ["task", "benchmark", "a", "b", "delta_first", "delta_second", "verdict_first", "verdict_second", "outcome", "sign_agrees"]


def replication_csv(result: dict[str, Any]) -> str:
    """One row per matched comparison, the deltas in points to 4 decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REPLICATION_COLUMNS)
    for r in result["rows"]:
        writer.writerow([f"{r[k]:.4f}" if k.startswith("delta") else r[k] for k in REPLICATION_COLUMNS])
    return buffer.getvalue()


def replication_markdown(result: dict[str, Any], first: str, second: str) -> str:
    lines = [f"### Replication: {first} vs {second}", "",
             "| task | benchmark | A | B | A − B (first) | A − B (second) | verdict (first) | verdict (second) | outcome |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['task']} | {r['benchmark']} | {r['a']} | {r['b']} | {r['delta_first']:+.2f} | {r['delta_second']:+.2f} | "
                     f"{r['verdict_first']} | {r['verdict_second']} | {r['outcome'].replace('_', ' ')} |")
    c = result
    lines += ["", f"{c['matched']} comparisons matched; {c['resolved_first']} resolved in the first grid: {c['same']} resolved the same way in the "
              f"second, {c['unresolved_second']} not resolved there, **{c['flipped']} flipped**; {c['resolved_second_only']} resolved only in the "
              f"second. Point estimates disagree in sign on {c['sign_disagreements']} of {c['matched']} (resolved or not)."]
    return "\n".join(lines) + "\n"
