"""python seeds_needed.py: training seeds an arm needs for a paired regime comparison's MDE (80% power, alpha 0.05, two-sided, unadjusted)
to reach 4 points, from the SD of per-seed differences pooled over P6x8's grids (statsmodels TTestPower)."""
from pathlib import Path
import numpy as np
import pandas as pd
from statsmodels.stats.power import TTestPower
pairs = [(("group_dpo", "1"), ("group_dpo", "inf"), "online vs offline"), (("group_dpo", "4"), ("group_dpo", "inf"), "semi-online vs offline"),
         (("grpo", "1"), ("group_dpo", "1"), "GRPO vs online GroupDPO")]
variances = {}
here = Path(__file__).parent
files = [here / f"per_run_grid_data_seed{k}.csv" for k in (0, 4, 5)] + [here / "per_run_zen4_data_seed0.csv"]
for f in files:
    d = pd.read_csv(f)
    if "balance_if_types" in d: d = d[~d.balance_if_types]
    d["s"] = d["s"].astype(str).str.replace(".0", "", regex=False)
    for a, b, name in pairs:
        for bench in ("math_heldout", "if_heldout"):
            A = d[(d.objective == a[0]) & (d.s == a[1])].set_index("training_seed")[bench]
            B = d[(d.objective == b[0]) & (d.s == b[1])].set_index("training_seed")[bench]
            variances.setdefault((name, bench), []).append((A - B).dropna().var(ddof=1))
power = TTestPower()
for (name, bench), v in variances.items():
    sd = float(np.sqrt(np.mean(v)))
    mde = {n: power.solve_power(nobs=n, alpha=0.05, power=0.8) * sd for n in (3, 5, 10)}
    need = next(n for n in range(2, 500) if power.solve_power(nobs=n, alpha=0.05, power=0.8) * sd <= 4)
    print(f"{name:26} {bench:13} pooled SD of paired differences {sd:5.2f} over {len(v)} grids; MDE at 3/5/10 seeds "
          f"{mde[3]:5.1f} / {mde[5]:4.1f} / {mde[10]:4.1f}; seeds for MDE <= 4: {need}")
