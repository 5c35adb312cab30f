"""Arena-Hard-Auto v2.0 scores from pairwise judgments, as arena-hard-auto's `show_result.py` computes them.

A port of arena-hard-auto (Apache-2.0, github.com/lmarena/arena-hard-auto, HEAD 196f6b8; the package is
not installable): `gen_judgment.py` get_score (the v2.0 verdict regexes), `show_result.py`
load_judgments / print_leaderboard / print_leaderboard_with_style_features, `utils/math_utils.py`
(one_hot_encode, fit_pairwise_model with torch L-BFGS, bootstrap_pairwise_model, to_winrate_probabilities)
and `utils/add_markdown_info.py` (the style metadata). Every formula below is upstream's, in upstream's order:

- battles: a judgment counts only when both games have a verdict (upstream drops the whole judgment
  otherwise); game 2 (model in position A) scores label_to_score[label], game 1 1 - that; a strong
  verdict (`>>`, `<<`) is 3 battles;
- plain: per model, 100 rounds of resampling its battles with replacement; score = the mean of the
  round means, interval = their 5% and 95% quantiles;
- style control: per battle, the normalised token-length difference (m - b) / (m + b) and, for headers,
  lists and bold, the density difference (d_m - d_b) / (d_m + d_b + 1) with d = count / (tokens + 1),
  z-scored over the category's battles (torch mean / unbiased std); a Bradley-Terry fit (logistic loss
  on +1 model / -1 baseline one-hot columns plus the features) on 100 bootstrap resamples of the
  battles; score = the median of the win rates vs the category's baseline, interval 5%/95%.

Random draws use numpy's legacy RandomState in upstream's call order (pandas GroupBy.sample draws
`choice(n, n, replace=True)` per model in sorted order; bootstrap_pairwise_model one
`randint(0, N, (100, N))`), so `seed=s` reproduces upstream run after `np.random.seed(s)`.

Deviations: token_len counts tokens with the packaged SmolLM2-135M tokenizer (offline), not tiktoken's
gpt-4o encoding (a download), when an answer file carries no `metadata`; labels upstream would crash on
(a matched `[[...]]` that is not one of its ten labels) drop the judgment like a missing verdict; a style
feature that is constant over the battles (std 0: upstream's assert fails) is left out of the fit and named
in `notes`; scores are in points (upstream prints percent rounded to 0.1).
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BASELINES = {"hard_prompt": "o3-mini-2025-01-31", "creative_writing": "gemini-2.0-flash-001"}  # judge_utils JUDGE_SETTINGS
CATEGORIES = tuple(BASELINES)
REGEX_PATTERNS = (r"\[\[([AB<>=]+)\]\]", r"\[([AB<>=]+)\]")  # config/arena-hard-v2.0.yaml regex_patterns
WEIGHT = 3
# show_result.py load_judgments: label -> battle outcomes for assistant A.
LABEL_TO_SCORE = {
    "A>B": [1], "A>>B": [1] * WEIGHT, "A=B": [0.5], "A<<B": [0] * WEIGHT, "A<B": [0],
    "B>A": [0], "B>>A": [0] * WEIGHT, "B=A": [0.5], "B<<A": [1] * WEIGHT, "B<A": [1],
}
STYLE_FEATURES = ("length", "markdown")
BOOTSTRAP_ROUNDS = 100
OFFLINE_TOKENIZER = "smollm2"  # semibench.models.resolve_model name: the packaged SmolLM2-135M-Instruct


def get_score(judgment: str) -> str | None:
    """gen_judgment.py get_score: the last match of the first pattern that matches the upper-cased judgment."""
    for pattern in REGEX_PATTERNS:
        matches = [m for m in re.findall(pattern, judgment.upper()) if m != ""]
        if matches:
            return matches[-1].strip("\n")
    return None


def battle_scores(games: list) -> list[float] | None:
    """The model's battle outcomes from one judgment's two games (game 1: baseline is A), or None if upstream drops it."""
    labels = [g.get("score") if isinstance(g, dict) else None for g in (list(games) + [None, None])[:2]]
    if any(label not in LABEL_TO_SCORE for label in labels):
        return None
    return LABEL_TO_SCORE[labels[1]] + [1 - s for s in LABEL_TO_SCORE[labels[0]]]


# ---- style metadata (utils/add_markdown_info.py) ----

_CODE_BLOCK = re.compile("```([^`]*)```")


def count_markdown_elements(markdown_text: str) -> dict:
    return {
        "header_count": {f"h{n}": len(re.findall(rf"^#{{{n}}}\s", markdown_text, re.MULTILINE)) for n in range(1, 7)},
        "list_count": {
            "ordered": len(re.findall(r"^\s*\d+\.\s", markdown_text, re.MULTILINE)),
            "unordered": len(re.findall(r"^\s*[-*+]\s", markdown_text, re.MULTILINE)),
        },
        "bold_count": {
            "**": len(re.findall(r"\*\*[^*\n]+\*\*", markdown_text)),
            "__": len(re.findall(r"__[^_\n]+__", markdown_text)),
        },
    }


def remove_code_blocks(answer: str) -> str:
    """remove_pattern: every ``` block's inner text found is replaced (str.replace) by nothing."""
    for block in _CODE_BLOCK.findall(answer):
        answer = answer.replace(block, "")
    return answer


def style_metadata(answer: str, count_tokens: Callable[[str], int]) -> dict:
    """add_markdown_meta: {"token_len", "header_count", "list_count", "bold_count"} in upstream's key order."""
    return {"token_len": count_tokens(answer)} | count_markdown_elements(remove_code_blocks(answer))


def offline_token_counter() -> Callable[[str], int]:
    """Token counts with the packaged SmolLM2 tokenizer (works offline; upstream: tiktoken gpt-4o, a download)."""
    from transformers import AutoTokenizer

    from semibench.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(OFFLINE_TOKENIZER))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def answer_text(row: dict) -> str:
    content = row["messages"][-1]["content"]
    return content["answer"] if isinstance(content, dict) else content


def answer_row(uid: str, model: str, question: str, answer: str, metadata: dict, **extra) -> dict:
    """One line of arena-hard's model_answer/<model>.jsonl (with add_markdown_info's `metadata`)."""
    return {"uid": uid, "ans_id": uid, "model": model, "messages": [{"role": "user", "content": question},
            {"role": "assistant", "content": {"answer": answer}}], **extra, "metadata": metadata}


def read_jsonl_rows(path: Path) -> list[dict]:
    """JSON lines split on "\\n" only: answers hold U+2028 and friends, which str.splitlines also splits on."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text().split("\n"), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno} is not valid JSON ({exc}); fix or remove that line") from exc
    return rows


def load_style_metadata(answers_dir: Path, count_tokens: Callable[[str], int] | None = None) -> dict[tuple[str, str, int], dict]:
    """get_model_style_metadata: (model, uid, sample) -> metadata from every model_answer/*.jsonl.

    An answer without `metadata` gets it computed as add_markdown_info.py does (token_len: the offline tokenizer).
    """
    answers_dir = Path(answers_dir)
    files = glob.glob(os.path.join(answers_dir, "*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no *.jsonl answer files in {answers_dir}; pass the model_answer/ directory (baselines included)")
    out = {}
    for file in files:
        for row in read_jsonl_rows(Path(file)):
            meta = row.get("metadata")
            if not meta:
                count_tokens = count_tokens or offline_token_counter()
                meta = style_metadata(answer_text(row), count_tokens)
            out[(row["model"].split("/")[-1], row["uid"], row.get("sample", 0))] = meta
    return out


# ---- battles (show_result.py load_judgments) ----

@dataclass
class Battles:
    """Exploded battles in upstream's row order: one row per battle outcome (for the model)."""

    model: list[str] = field(default_factory=list)
    uid: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    sample: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    judgments: dict[str, int] = field(default_factory=dict)  # per model, judgment lines read
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)  # per (model, category): judgments without two usable verdicts

    def select(self, keep: np.ndarray) -> Battles:
        pick = lambda values: [v for v, k in zip(values, keep) if k]  # noqa: E731
        return Battles(pick(self.model), pick(self.uid), pick(self.category), pick(self.sample), pick(self.scores),
                       self.judgments, self.dropped)


def load_battles(judgments_dir: Path) -> Battles:
    """Every model_judgment/<judge>/*.jsonl ({uid, category, model, games, [sample]}), in glob order as upstream."""
    judgments_dir = Path(judgments_dir)
    if not judgments_dir.is_dir():
        raise FileNotFoundError(f"judgment directory not found: {judgments_dir}; pass data/<bench>/model_judgment/<judge>")
    files = glob.glob(os.path.join(judgments_dir, "*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no *.jsonl judgment files in {judgments_dir}; pass the directory holding <model>.jsonl files")
    battles = Battles()
    for file in files:
        for row in read_jsonl_rows(Path(file)):
            if not isinstance(row.get("model"), str) or not isinstance(row.get("games"), list) or "uid" not in row or "category" not in row:
                raise ValueError(f"{file}: expected rows with 'uid', 'category', 'model' and 'games' (arena-hard v2.0 judgments)")
            model = row["model"].split("/")[-1]  # upstream: "remove model path"
            battles.judgments[model] = battles.judgments.get(model, 0) + 1
            scores = battle_scores(row["games"])
            if scores is None:
                key = (model, row["category"])
                battles.dropped[key] = battles.dropped.get(key, 0) + 1
                continue
            for s in scores:
                battles.model.append(model)
                battles.uid.append(row["uid"])
                battles.category.append(row["category"])
                battles.sample.append(row.get("sample", 0))
                battles.scores.append(float(s))
    return battles


# ---- scores ----

def plain_scores(battles: Battles, seed: int | None = None, rounds: int = BOOTSTRAP_ROUNDS) -> dict[str, dict]:
    """print_leaderboard: bootstrap mean of per-battle scores and 5/95% quantiles, in points."""
    rs = np.random.RandomState(seed)
    models = sorted(set(battles.model))  # groupby's group order
    scores = np.array(battles.scores, dtype=float)
    where = {m: np.flatnonzero(np.array(battles.model) == m) for m in models}
    means = np.empty((rounds, len(models)))
    for r in range(rounds):
        for j, m in enumerate(models):
            means[r, j] = scores[where[m][rs.choice(len(where[m]), size=len(where[m]), replace=True)]].mean()
    return {m: _summary(means[:, j], np.mean(means[:, j])) for j, m in enumerate(models)}


def _summary(values: np.ndarray, centre: float) -> dict:
    lower, upper = np.quantile(values, [0.05, 0.95])  # pandas quantile: linear interpolation, as numpy's default
    return {"score": 100 * float(centre), "ci_lower": 100 * float(lower), "ci_upper": 100 * float(upper)}


def style_features(battles: Battles, metadata: dict, baselines: dict[str, str]) -> np.ndarray:
    """print_leaderboard_with_style_features' final_feature_tensor: [length, header, list, bold] per battle."""
    import torch

    def vector(meta: dict) -> list:
        return [v if isinstance(v, int) else sum(v.values()) for v in meta.values()]

    try:
        model_meta = [vector(metadata[(m, u, s)]) for m, u, s in zip(battles.model, battles.uid, battles.sample)]
        base_meta = [vector(metadata[(baselines[c], u, 0)]) for c, u in zip(battles.category, battles.uid)]
    except KeyError as exc:
        raise ValueError(f"no answer (style metadata) for {exc.args[0]}; --answers must hold every judged model's and baseline's answers") from None
    m, b = torch.tensor(model_meta, dtype=torch.float32), torch.tensor(base_meta, dtype=torch.float32)
    final = torch.zeros_like(m)
    final[:, 0] = (m[:, 0] - b[:, 0]) / (m[:, 0] + b[:, 0])
    m_density, b_density = m[:, 1:] / (m[:, :1] + 1), b[:, 1:] / (b[:, :1] + 1)
    final[:, 1:] = (m_density - b_density) / (m_density + b_density + 1)
    return final


def fit_bt(features, outcomes, indices=None, lr: float = 0.1, tol: float = 1e-9, max_epochs: int = 50):
    """math_utils.fit_pairwise_model(loss_type="bt"): logits initialised at 0.5, L-BFGS on the summed logistic loss."""
    import torch
    import torch.nn.functional as F

    if indices is not None:
        features, outcomes = features[indices], outcomes[indices]
    logits = torch.nn.Parameter(torch.full((features.shape[1],), 0.5))
    optimizer = torch.optim.LBFGS([logits], lr=lr, max_iter=max_epochs, tolerance_grad=tol, tolerance_change=tol)

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(features @ logits, outcomes.float(), reduction="sum")
        loss.backward()
        return loss

    optimizer.step(closure)
    return logits.detach()


def style_scores(battles: Battles, metadata: dict, category: str, control: tuple[str, ...] = STYLE_FEATURES,
                 seed: int | None = None, rounds: int = BOOTSTRAP_ROUNDS) -> tuple[dict[str, dict], dict, list[str]]:
    """print_leaderboard_with_style_features: per model {score, ci_lower, ci_upper} (points), the median feature
    coefficients, and notes. `battles` must be one category's."""
    import torch

    if not control or set(control) - set(STYLE_FEATURES):
        raise ValueError(f"style control takes {' and/or '.join(STYLE_FEATURES)}, got {','.join(control) or 'nothing'}")
    baseline = BASELINES[category]
    final = style_features(battles, metadata, BASELINES)
    normalized = (final - torch.mean(final, axis=0)) / torch.std(final, axis=0)
    names = ["length", "header", "list", "bold"]
    keep = [0] if control == ("length",) else [1, 2, 3] if control == ("markdown",) else [0, 1, 2, 3]
    notes = []
    constant = [i for i in keep if torch.isnan(normalized[:, i]).any()]
    if constant:  # upstream asserts here; a constant column carries no information, so it is left out
        notes.append(f"style feature(s) {', '.join(names[i] for i in constant)} constant over the {len(battles.scores)} battles: left out of the fit")
        keep = [i for i in keep if i not in constant]
    unique = sorted(set(battles.model) | {baseline})  # one_hot_encode
    one_hot = torch.zeros(len(battles.model), len(unique))
    one_hot[torch.arange(len(battles.model)), [unique.index(m) for m in battles.model]] = 1
    one_hot[:, unique.index(baseline)] = -1
    features = torch.cat([one_hot, normalized[:, keep]], dim=1)
    outcomes = torch.tensor(battles.scores)
    boot = np.random.RandomState(seed).randint(low=0, high=features.shape[0], size=(rounds, features.shape[0]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few thousand rows x ~10 columns: one thread is ~8x faster on a busy 2-core machine
    try:
        coefs = torch.stack([fit_bt(features, outcomes, boot[i]) for i in range(rounds)])
    finally:
        torch.set_num_threads(threads)
    model_coefs = coefs[:, : len(unique)]
    exp = torch.exp(model_coefs)
    probs = (exp / (exp + exp[:, unique.index(baseline)].unsqueeze(1))).numpy().astype(float)  # to_winrate_probabilities
    result = {m: _summary(probs[:, j], np.quantile(probs[:, j], 0.5)) for j, m in enumerate(unique) if m != baseline}
    feature_coefs = {names[i]: float(c) for i, c in zip(keep, torch.quantile(coefs[:, len(unique):], 0.5, dim=0))} if keep else {}
    return result, feature_coefs, notes


def score_v2(judgments_dir: Path, answers_dir: Path | None = None, category: str = "hard_prompt",
             style_control: tuple[str, ...] = (), seed: int | None = 0) -> dict:
    """`show_result.py -c <category> [-f <features>]` for one judgment directory:
    {"models": {model: {score, ci_lower, ci_upper, judgments, dropped}}, "category", "baseline", "style_control", ...}."""
    if category not in BASELINES:
        raise ValueError(f"unknown category '{category}'; one of {', '.join(CATEGORIES)}")
    battles = load_battles(judgments_dir)
    cat = battles.select(np.array(battles.category) == category)
    if not cat.scores:
        raise ValueError(f"no usable {category} judgments in {judgments_dir} (categories present: {', '.join(sorted(set(battles.category))) or 'none'})")
    out = {"category": category, "baseline": BASELINES[category], "style_control": ",".join(style_control) or None, "notes": []}
    if style_control:
        if answers_dir is None:
            raise ValueError("style control needs --answers: the model_answer/ directory with every judged model's and baseline's answers")
        scores, out["feature_coefs"], out["notes"] = style_scores(cat, load_style_metadata(answers_dir), category, tuple(style_control), seed)
    else:
        scores = plain_scores(cat, seed)
    out["models"] = {m: {**s, "battles": cat.model.count(m), "dropped": battles.dropped.get((m, category), 0)} for m, s in scores.items()}
    return out
