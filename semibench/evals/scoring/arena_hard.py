"""Arena-Hard-Auto v0.1 scores from pairwise judgments: verdicts -> battles -> Bradley–Terry win rate vs the baseline.

Our re-implementation (arena-hard-auto is not installable) of the v0.1-era scorer of arena-hard-auto
(Apache-2.0, github.com/lmarena/arena-hard-auto): `gen_judgment.py` get_score (verdict regex),
`show_result.py` get_battles_from_row (two games, strong verdicts repeated WEIGHT=3 times) and
`utils_math.py` compute_mle_elo / get_bootstrap_result / predict_win_rate.
As upstream, the BT fit is scikit-learn's unpenalised LogisticRegression (fit_intercept=False, tol=1e-8),
with ties as one win plus one loss; `score` comes from the fit on all battles and `lower`/`upper` are
the 2.5 / 97.5 percentiles over bootstrap rounds that resample battles with replacement.
Deliberate differences: a seeded numpy Generator instead of the global seed 42 (same method, other draws);
percentiles are taken over win rates instead of ratings (same order statistics, and finite when a model
wins every battle); when every battle has one outcome, sklearn refuses to fit and the MLE is the limit
(rating +-inf, win rate 100 or 0), which we return; scores are not rounded to 2 decimals.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VERDICT_PATTERN = re.compile(r"\[\[([AB<>=]+)\]\]")
LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
WEIGHT = 3  # a strong verdict counts as this many battles
SCALE, BASE, INIT_RATING = 400, 10, 1000

# Game 1 puts the baseline in position A: label -> (outcome for the model, battles). Game 2 swaps A and B.
_MODEL_IS_B = {"A>>B": (0.0, WEIGHT), "A>B": (0.0, 1), "A=B": (0.5, 1), "B>A": (1.0, 1), "B>>A": (1.0, WEIGHT)}
_SWAP = {"A>>B": "B>>A", "A>B": "B>A", "A=B": "A=B", "B>A": "A>B", "B>>A": "A>>B"}


def parse_verdict(judgment: str) -> str | None:
    """The judge's `[[label]]`, or None when it gave none, several different ones, or an unknown label.

    Same rule as upstream get_score: a repeated identical verdict is fine, a contradictory one is not.
    """
    found = {m for m in VERDICT_PATTERN.findall(judgment) if m}
    if len(found) != 1:
        return None
    label = found.pop()
    return label if label in LABELS else None  # e.g. "A<B" is matched by the regex but never scored upstream


def game_battles(label: str | None, model_is_a: bool) -> list[float]:
    """Battle outcomes for the model (1 win, 0.5 tie, 0 loss) from one game; [] if the verdict is unusable."""
    if not isinstance(label, str) or label not in _MODEL_IS_B:
        return []
    outcome, repeat = _MODEL_IS_B[_SWAP[label] if model_is_a else label]
    return [outcome] * repeat


@dataclass
class Judgments:
    """Battles of judged models against one baseline, read from a `model_judgment/<judge>/` directory."""

    models: list[str] = field(default_factory=list)  # battle i was fought by models[model_idx[i]]
    model_idx: list[int] = field(default_factory=list)
    outcomes: list[float] = field(default_factory=list)
    questions: Counter = field(default_factory=Counter)  # judgment lines per model
    skipped: Counter = field(default_factory=Counter)  # games without a usable verdict, per model

    def add(self, model: str, games: list) -> None:
        if model not in self.models:
            self.models.append(model)
        self.questions[model] += 1
        for position in (0, 1):  # upstream reads games 1 and 2 only; a missing game counts as skipped
            game = games[position] if position < len(games) else None
            label = game.get("score") if isinstance(game, dict) else None
            battles = game_battles(label, model_is_a=position == 1)
            if not battles:
                self.skipped[model] += 1
            self.model_idx += [self.models.index(model)] * len(battles)
            self.outcomes += battles


def load_judgments(directory: Path, baseline: str = "gpt-4-0314") -> Judgments:
    """Read every `*.jsonl` in arena-hard's judgment format: {question_id, model, judge, games: [{score, ...}, x2]}.

    `baseline` is only used to reject judgments of the baseline against itself.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"judgment directory not found: {directory}; pass data/<bench>/model_judgment/<judge>")
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no *.jsonl judgment files in {directory}; pass the directory holding <model>.jsonl files")
    judgments = Judgments()
    for path in files:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where} is not valid JSON ({exc}); fix or remove that line") from exc
            if not isinstance(row, dict) or not isinstance(row.get("model"), str) or not isinstance(row.get("games"), list):
                raise ValueError(f"{where}: expected an object with 'model' (string) and 'games' (list)")
            if row["model"] == baseline:
                raise ValueError(f"{where}: judgment of the baseline {baseline} against itself; remove that file or pick another --baseline")
            judgments.add(row["model"], row["games"])
    return judgments


def bt_ratings(model_idx: np.ndarray, outcomes: np.ndarray, n_models: int) -> np.ndarray:
    """Elo-scale BT ratings of each judged model with the baseline anchored at INIT_RATING (compute_mle_elo).

    Every battle is baseline (model_a) vs one judged model (model_b). Models absent from the battles get NaN.
    """
    # Column 0 is the baseline. Battles are duplicated so a tie can be one win for A plus one for B.
    n = len(outcomes)
    X = np.zeros((2 * n, n_models + 1))
    rows = np.arange(2 * n)
    X[rows, 0] = math.log(BASE)
    X[rows, np.tile(model_idx, 2) + 1] = -math.log(BASE)
    baseline_won = np.concatenate([outcomes < 1, outcomes == 0]).astype(float)  # a tie: first copy only
    present = np.bincount(model_idx, minlength=n_models) > 0
    ratings = np.full(n_models, np.nan)
    if baseline_won.min() == baseline_won.max():  # one outcome everywhere: the MLE diverges to +-inf
        ratings[present] = INIT_RATING + (-np.inf if baseline_won[0] else np.inf)
        return ratings
    from sklearn.linear_model import LogisticRegression

    # C=inf is sklearn >= 1.8's spelling of upstream's penalty=None (no regularisation).
    coef = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-8).fit(X, baseline_won).coef_[0]
    elo = SCALE * coef + INIT_RATING
    ratings[present] = (elo[1:] - elo[0] + INIT_RATING)[present]
    return ratings


def win_rate(rating: np.ndarray | float) -> np.ndarray | float:
    """Predicted percent win rate against the baseline (rated INIT_RATING), as predict_win_rate."""
    return 100 / (1 + BASE ** ((INIT_RATING - np.asarray(rating, dtype=float)) / SCALE))


def score_judgments(directory: Path, baseline: str = "gpt-4-0314", bootstrap_rounds: int = 100, seed: int = 0) -> dict[str, dict]:
    """Per judged model: score (BT win rate vs baseline, %), lower/upper (95% bootstrap CI), n questions, skipped games.

    A model without any usable verdict gets score/lower/upper None.
    """
    if bootstrap_rounds < 1:
        raise ValueError(f"bootstrap_rounds must be >= 1, got {bootstrap_rounds}")
    judgments = load_judgments(directory, baseline)
    idx, outcomes, n_models = np.array(judgments.model_idx, dtype=int), np.array(judgments.outcomes), len(judgments.models)
    scores = win_rate(bt_ratings(idx, outcomes, n_models)) if len(outcomes) else np.full(n_models, np.nan)
    rng = np.random.default_rng(seed)
    boot = np.full((bootstrap_rounds, n_models), np.nan)
    for r in range(bootstrap_rounds if len(outcomes) else 0):
        sample = rng.integers(0, len(outcomes), len(outcomes))
        boot[r] = win_rate(bt_ratings(idx[sample], outcomes[sample], n_models))
    result = {}
    for i, model in enumerate(judgments.models):
        usable = not np.isnan(scores[i])
        lower, upper = np.nanpercentile(boot[:, i], [2.5, 97.5]) if usable else (None, None)
        result[model] = {
            "score": float(scores[i]) if usable else None,
            "lower": float(lower) if usable else None,
            "upper": float(upper) if usable else None,
            "n": judgments.questions[model],
            "skipped": judgments.skipped[model],
        }
    return result
