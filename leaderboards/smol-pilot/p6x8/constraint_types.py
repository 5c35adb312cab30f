"""Does a run that trained on more prompts of a constraint type gain more on that type, held out?

    python constraint_types.py RUNS_DIR OUT_CSV    (a grid's runs tree, with the seed model's evaluation)

For every finished run: how many of its training IF prompts carried each constraint type (rebuilt with the
run's own sampler and config, so it is exact) and its held-out IF score per type, minus the seed model's on
the same items. Fits, with statsmodels, the gain on the count: per (run, type) with run and type fixed
effects, standard errors clustered by run; and per (training seed, type) on the shuffled arms' mean gain, with
training seed and type fixed effects, HC3 standard errors. Weighted by the type's held-out items.
"""
import collections
import json
import sys
from pathlib import Path

import pandas as pd
import statsmodels.formula.api as smf

from semibench import config
from semibench.tasks import PromptSampler, constraint_type_strata, load_prompts


def per_type(samples: Path) -> tuple[dict[str, float], dict[str, int]]:
    scores = collections.defaultdict(list)
    for line in samples.read_text().splitlines():
        row = json.loads(line)
        if "scores" in row:
            for kind in row["constraints"]["instruction_id_list"]:
                scores[kind].append(sum(row["scores"]) / len(row["scores"]))
    return {k: 100 * sum(v) / len(v) for k, v in scores.items()}, {k: len(v) for k, v in scores.items()}


def trained_counts(cfg: config.RunConfig) -> collections.Counter:
    pools = load_prompts(cfg.task)
    sampler = PromptSampler(pools, cfg.train.prompts_per_step, cfg.task.math_fraction, cfg.train.seed, constraint_type_strata(cfg.task, pools))
    return collections.Counter(kind for step in range(cfg.train.steps) for p in sampler.batch(step) if p.kind == "if"
                               for kind in json.loads(p.gold)["instruction_id_list"])


def main(runs: Path, out_csv: Path) -> None:
    seed_score, items = per_type(runs / "seed-smollm2" / "eval" / "if_heldout.samples.jsonl")
    rows = []
    for run in sorted(runs.glob("mixed-*")):
        samples = next(run.glob("eval/step_*/if_heldout.samples.jsonl"), None)
        if samples is None:
            continue
        cfg = config.from_dict(json.loads((run / "config.json").read_text()))
        seen, (score, _) = trained_counts(cfg), per_type(samples)
        arm = f"{cfg.loss.objective} s={cfg.train.sync_every or 'inf'}" + (" balanced" if cfg.task.balance_if_types else "")
        rows += [{"run_id": run.name, "arm": arm, "training_seed": cfg.train.seed, "constraint_type": kind, "trained_prompts": seen.get(kind, 0),
                  "heldout_items": items[kind], "heldout_score": round(score[kind], 2), "gain_over_seed": round(score[kind] - seed_score[kind], 2)}
                 for kind in score]
    d = pd.DataFrame(rows)
    d.to_csv(out_csv, index=False)
    shuffled = d[~d.arm.str.endswith("balanced")]
    fit = smf.wls("gain_over_seed ~ trained_prompts + C(run_id) + C(constraint_type)", shuffled, weights=shuffled.heldout_items).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(shuffled.run_id)[0]})
    cells = shuffled.groupby(["training_seed", "constraint_type"], as_index=False).agg(
        gain_over_seed=("gain_over_seed", "mean"), trained_prompts=("trained_prompts", "first"), heldout_items=("heldout_items", "first"))
    fit_cells = smf.wls("gain_over_seed ~ trained_prompts + C(training_seed) + C(constraint_type)", cells, weights=cells.heldout_items).fit(cov_type="HC3")
    for name, f, n in (("per (run, type), clustered by run", fit, f"{shuffled.run_id.nunique()} runs"),
                       ("per (training seed, type), arms' mean, HC3", fit_cells, f"{len(cells)} cells")):
        lo, hi = f.conf_int().loc["trained_prompts"]
        print(f"held-out gain per extra training prompt of the type, {name}: {f.params['trained_prompts']:+.2f} points "
              f"[{lo:+.2f}, {hi:+.2f}] (95% CI), p {f.pvalues['trained_prompts']:.3g}; {n}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
