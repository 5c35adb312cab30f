"""Which part of a training seed moves a run's held-out scores: the prompt order or the sampling stream?

    python order_vs_stream.py RUNS_DIR OUT_CSV    (runs of one arm at several train.prompt_order_seed x train.seed)

For every finished run: its prompt order seed (`train.prompt_order_seed`, the training seed where unset), its
training seed (which then fixes only the sampling stream: the generator's seeds and the pairs' draws), and its
final held-out IF and math scores with their standard errors over items, and the seed model's beside them. Fits,
with statsmodels, each score on the two seeds as factors (OLS, additive; `anova_lm` type II): each factor's share
of the sum of squares and its F-test.
"""
import json
import sys
from pathlib import Path

import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

BENCHMARKS = {"if": "if_heldout", "math": "math_heldout"}


def scores(eval_dir: Path) -> dict[str, float]:
    out = {}
    for short, bench in BENCHMARKS.items():
        result = json.loads((eval_dir / f"{bench}.json").read_text())
        out[short], out[f"{short}_se_items"] = result["score"], result["se_items"]
    return out


def main(root: Path, out_csv: Path) -> None:
    seed_model = scores(next(root.glob("seed-*")) / "eval")
    rows = []
    for run in sorted(root.glob("*/DONE")):
        cfg = json.loads((run.parent / "config.json").read_text())["train"]
        final = sorted((run.parent / "eval").glob("step_*"))[-1]
        order = cfg["seed"] if cfg.get("prompt_order_seed") is None else cfg["prompt_order_seed"]
        row = {"run": run.parent.name, "order_seed": order, "training_seed": cfg["seed"], **scores(final)}
        rows.append(row | {f"{k}_minus_seed": row[k] - seed_model[k] for k in BENCHMARKS})
    df = pd.DataFrame(rows).sort_values(["order_seed", "training_seed"])
    df.round(4).to_csv(out_csv, index=False)
    print(f"seed model: IF {seed_model['if']:.1f}, math {seed_model['math']:.1f}; {len(df)} runs -> {out_csv}")
    for short in BENCHMARKS:
        print(f"\n{short}: order seed (rows) x training seed (columns); SD over the runs {df[short].std(ddof=1):.2f}")
        print(df.pivot(index="order_seed", columns="training_seed", values=short).round(1).to_string())
        table = anova_lm(smf.ols(f"Q('{short}') ~ C(order_seed) + C(training_seed)", data=df).fit(), typ=2)
        table["share"] = table["sum_sq"] / table["sum_sq"].sum()
        print(table.round(4).to_string())


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
