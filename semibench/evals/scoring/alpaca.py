"""AlpacaEval 2.0 scores from an alpaca-eval `annotations.json`, computed by alpaca-eval's own metric code.

Preference encoding (alpaca-eval `metrics/helpers.py` describe_head2head): 1 = output_1 (the baseline)
wins, 2 = output_2 (the model) wins, 1.5 or 0 = draw, values in between = a weighted judge's
1 + P(model better). `win_rate` = mean(preference - 1) x 100 and `standard_error` = its SEM x 100.
A row whose preference is missing or outside that encoding is refused, naming the file and the row
(alpaca-eval would drop it silently, and with every row dropped report NaN).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

DF_GAMED_NOTE = (
    "length-controlled win rate not computed: alpaca-eval's GLM needs df_gamed.csv (per-instruction difficulty "
    "and annotations of length-gamed baselines), which exists only on the Hugging Face hub "
    "(dataset tatsu-lab/alpaca_eval); pass its path to compute it"
)


def load_annotations(path: Path) -> list[dict]:
    """Read an `annotations.json` (a JSON list of objects, each with a `preference`)."""
    if not path.is_file():
        raise FileNotFoundError(f"annotations file not found: {path}; pass the annotations.json that alpaca-eval wrote")
    try:
        rows = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); pass alpaca-eval's annotations.json") from exc
    _check(rows, str(path))
    return rows


ENCODING = "1 = baseline wins, 2 = model wins, 1.5 or 0 = draw, values between 1 and 2 = a weighted judge"


def _check(rows: Any, where: str) -> None:
    """Every row holds a preference alpaca-eval can score: a finite number, 0 or in [1, 2].

    alpaca-eval itself drops other values silently, so 805 preferences of 7 used to give
    `win_rate: NaN, n_total: 0` and exit 0; a result that is not a number is never printed.
    """
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{where}: expected a non-empty JSON list of objects with a 'preference' field")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: row {i} is a {type(row).__name__}, not an object with a 'preference' field")
        if "preference" not in row:
            raise ValueError(f"{where}: row {i} has no 'preference' field (fields: {', '.join(row) or 'none'})")
        p = row["preference"]
        number = isinstance(p, (int, float)) and not isinstance(p, bool)
        if not number or not math.isfinite(p) or not (p == 0 or 1 <= p <= 2):
            raise ValueError(f"{where}: row {i} field 'preference' is {json.dumps(p)}; alpaca-eval's encoding is {ENCODING}")


def _alpaca_metrics():
    # alpaca-eval imports pkg_resources at module level; the deprecation warning is not ours to act on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        from alpaca_eval.metrics import glm_winrate, winrate
    return winrate, glm_winrate


def _plain(metrics: dict) -> dict:
    """numpy scalars -> Python numbers, so the result is JSON-serialisable."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}


def alpaca_winrate(annotations: list[dict]) -> dict:
    """win_rate, standard_error (percent), n_wins, n_wins_base, n_draws, n_total, discrete_win_rate."""
    _check(annotations, "annotations")
    winrate, _ = _alpaca_metrics()
    return _plain(winrate.get_winrate(annotations))


def length_controlled_winrate(
    annotations: list[dict], df_gamed: Path | None = None, glm_name: str = "length_controlled_v1"
) -> tuple[dict | None, str]:
    """alpaca-eval's `get_length_controlled_winrate` when a local `df_gamed.csv` is given, else (None, why not).

    `annotations` must be the 805 AlpacaEval rows in canonical order (the GLM looks up instruction difficulty
    by row position) with `output_1`, `output_2`, `generator_1`, `generator_2`. The hub download inside
    alpaca-eval is redirected to the local file; nothing else in its computation is changed.
    """
    if df_gamed is None:
        return None, DF_GAMED_NOTE
    if not df_gamed.is_file():
        raise FileNotFoundError(f"df_gamed.csv not found: {df_gamed}; download it from the hub dataset tatsu-lab/alpaca_eval")
    _check(annotations, "annotations")
    from unittest import mock

    _, glm_winrate = _alpaca_metrics()
    with mock.patch.object(glm_winrate, "hf_hub_download", lambda **_: str(df_gamed)), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklearn 1.8+ deprecates the `penalty` alpaca-eval passes
        try:
            metrics = glm_winrate.get_length_controlled_winrate(annotations, glm_name=glm_name, save_weights_dir=None)
        except KeyError as exc:
            raise ValueError(f"{df_gamed} or the annotations lack a column alpaca-eval's GLM needs: {exc}") from exc
    return _plain(metrics), f"length-controlled win rate from alpaca-eval's {glm_name} GLM with {df_gamed}"
