"""avg@N: the mean score over N samples per prompt and its standard error, in percent.

N = 1 (e.g. greedy): the mean over prompts and the standard error of that mean, std(ddof=1) / sqrt(n)
(lm-eval's `mean_stderr`). N > 1: the paper's convention (paper.md §2.1, "standard error computed over
N random seeds"): seed j's score is the mean over prompts of every prompt's j-th sample, the reported
score is the mean of the N seed scores, and its standard error is std(seed scores, ddof=1) / sqrt(N).
"""

from __future__ import annotations

import math
from typing import Sequence


def avg_at_n(scores: Sequence[Sequence[float]]) -> tuple[float, float | None]:
    """(mean, standard error) in percent from scores[i][j] in [0, 1]: sample j of prompt i.

    The standard error is None where it is undefined (one prompt with one sample, or one seed of one prompt).
    """
    if not scores:
        raise ValueError("no scores: nothing was evaluated")
    num_samples = len(scores[0])
    if num_samples == 0 or any(len(row) != num_samples for row in scores):
        raise ValueError("every prompt needs the same, non-zero number of samples")
    if num_samples == 1:
        values = [row[0] for row in scores]
    else:
        values = [sum(row[j] for row in scores) / len(scores) for j in range(num_samples)]
    mean = sum(values) / len(values)
    if len(values) < 2:
        return 100 * mean, None
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return 100 * mean, 100 * math.sqrt(variance / len(values))


def seed_means(per_seed: Sequence[float]) -> tuple[float, float | None]:
    """(mean, standard error over seeds) of N per-seed scores already in percent (lm-eval aggregates, win rates)."""
    if not per_seed:
        raise ValueError("no seeds")
    mean = sum(per_seed) / len(per_seed)
    if len(per_seed) < 2:
        return mean, None
    variance = sum((v - mean) ** 2 for v in per_seed) / (len(per_seed) - 1)
    return mean, math.sqrt(variance / len(per_seed))
