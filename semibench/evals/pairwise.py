"""AlpacaEval 2.0 and Arena-Hard v0.1 / v2.0: generate answers, have the judge compare them with the baseline's, score.

Judge calls are resumable like generation: each judged prompt is appended to `<bench>--<judge>.samples.jsonl`
as it finishes. AlpacaEval writes alpaca-eval's `annotations.json` format (so `semibench score alpaca_eval`
recomputes the numbers) and scores with alpaca-eval's own metric code (`scoring/alpaca.py`); Arena-Hard
writes arena-hard's judgment format into `<stem>.judgments/` and scores it with `scoring/arena_hard.py`
(v0.1) or `scoring/arena_hard_v2.py` (v2.0, which also reads the answers and their style metadata, written to
`<bench>.answers/` in arena-hard's model_answer format, baselines included).
"""

from __future__ import annotations

import json
import warnings
from typing import Callable

from semibench.evals import data
from semibench.evals.session import GenRequest, Session, fingerprint, prompt_key
from semibench.evals.settings import result_stem
from semibench.runs import atomic_write_json, atomic_write_text

ALPACA_SWITCH_COLUMN, ALPACA_SEED = "is_switched_outputs", 123  # alpaca-eval's RandomSwitchTwoColumnsProcessor defaults
JUDGE_CHUNK = 8  # prompts judged between appends


def _generate(session: Session, bench: str, user_turns: list[str]) -> tuple[list[GenRequest], list[list[str]]]:
    requests = [GenRequest(prompt_key(p), p) for p in map(session.chat, user_turns)]
    return requests, session.complete(session.store(bench), requests, bench)


def _judge_store(session: Session, bench: str):
    s = session.settings
    return session.store(result_stem(bench, s.judge), fingerprint({"generation": session.generation_id(), "judge": s.judge, "judge_max_new_tokens": s.judge_max_new_tokens}))


def _judge_all(session: Session, bench: str, requests: list[GenRequest], store, judge_chunk: Callable[[list[int]], list[dict]]) -> list[dict]:
    """Judge every prompt `store` lacks, JUDGE_CHUNK prompts at a time, appending each chunk's rows; all rows, in order."""
    todo = [i for i, r in enumerate(requests) if r.key not in store]
    label, total = f"{bench} judge", len(requests)
    session.progress(label, total - len(todo), total)
    for start in range(0, len(todo), JUDGE_CHUNK):
        chunk = todo[start : start + JUDGE_CHUNK]
        store.append(judge_chunk(chunk))
        session.progress(label, total - len(todo) + start + len(chunk), total)
    return [store.rows[r.key] for r in requests]


def is_switched(instruction: str) -> bool:
    """alpaca-eval's seeded coin for showing the model's output first (seed = column + instruction + 123)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        from alpaca_eval.utils import random_seeded_choice

    return random_seeded_choice(seed=ALPACA_SWITCH_COLUMN + instruction + str(ALPACA_SEED), choices=[False, True])


def run_alpaca_eval(session: Session, bench: str, source: data.Source) -> dict:
    from semibench.evals.scoring import alpaca
    from semibench.evals.scoring.samples import seed_means

    s, n = session.settings, session.settings.samples_per_prompt
    references = data.alpaca_items(source)
    references = references[: s.limit] if s.limit else references
    requests, completions = _generate(session, bench, [r["instruction"] for r in references])

    def judge_chunk(chunk: list[int]) -> list[dict]:
        # output_1 is the reference, output_2 ours; the judge sees them in alpaca-eval's seeded random order.
        pairs = [(i, j, is_switched(references[i]["instruction"])) for i in chunk for j in range(n)]
        shown = [(references[i]["output"], completions[i][j])[:: -1 if sw else 1] for i, j, sw in pairs]
        verdicts = session.judge.alpaca_preferences([references[i]["instruction"] for i, _, _ in pairs], [a for a, _ in shown], [b for _, b in shown])
        rows = []
        for i in chunk:
            mine = [(v, sw) for (k, _, sw), v in zip(pairs, verdicts) if k == i]
            # Undo the switch as alpaca-eval does: preference -> 3 - preference.
            prefs = [3 - v["preference"] if sw else v["preference"] for v, sw in mine]
            rows.append({"key": requests[i].key, "instruction": references[i]["instruction"], "completions": completions[i],
                         "preferences": prefs, "is_switched_outputs": mine[0][1], "raw_completions": [v["raw_completion"] for v, _ in mine]})
        return rows

    store = _judge_store(session, bench)
    judged = _judge_all(session, bench, requests, store, judge_chunk)
    annotations = [[{
        "instruction": ref["instruction"], "dataset": ref.get("dataset"), "output_1": ref["output"], "generator_1": ref.get("generator", "gpt4_1106_preview"),
        "output_2": row["completions"][j], "generator_2": session.model_name, "annotator": s.judge, "preference": row["preferences"][j],
        "is_switched_outputs": row["is_switched_outputs"], "raw_completion": row["raw_completions"][j], "sample": j,
    } for ref, row in zip(references, judged)] for j in range(n)]
    stem = result_stem(bench, s.judge)
    atomic_write_json(session.out_dir / f"{stem}.annotations.json", [a for seed in annotations for a in seed])
    store.rewrite([{**row, "scores": [p - 1 for p in row["preferences"]]} for row in judged])  # P(ours better) per sample

    df_gamed = data.alpaca_df_gamed(s.data_dir)
    per_seed, lc_note = [], None
    for seed in annotations:
        metrics = alpaca.alpaca_winrate(seed)
        if len(seed) != 805:
            lc, lc_note = None, "length-controlled win rate not computed: alpaca-eval's GLM needs all 805 instructions in order (a --limit was set)"
        else:
            lc, lc_note = alpaca.length_controlled_winrate(seed, df_gamed)
        per_seed.append({**metrics, **(lc or {})})
    primary = "length_controlled_winrate" if "length_controlled_winrate" in per_seed[0] else "win_rate"
    metrics = {k: sum(m[k] for m in per_seed) / n for k in per_seed[0] if isinstance(per_seed[0][k], (int, float))}
    if n == 1:
        stderr = per_seed[0]["lc_standard_error" if primary == "length_controlled_winrate" else "standard_error"]
    else:
        _, stderr = seed_means([m[primary] for m in per_seed])
    return {"score": metrics[primary], "stderr": stderr, "primary_metric": primary, "metrics": metrics, "n": len(references),
            "notes": [lc_note] if lc_note else [], "annotations": f"{stem}.annotations.json"}


def run_arena_hard(session: Session, bench: str, source: data.Source) -> dict:
    from semibench.evals.scoring.arena_hard import game_battles, score_judgments

    s, n = session.settings, session.settings.samples_per_prompt
    v2 = bench == "arena_hard_v2"
    if v2:
        from semibench.evals.judges import ARENA_V2_SYSTEM_PROMPTS
        from semibench.evals.scoring.arena_hard_v2 import BASELINES

        items = data.arena_items(source, BASELINES)
        if s.limit:  # v2.0: the first N questions of each category, so both are scored
            items = [it for c in BASELINES for it in [x for x in items if x["category"] == c][: s.limit]]
    else:
        items = data.arena_items(source)
        items = items[: s.limit] if s.limit else items
    requests, completions = _generate(session, bench, [it["question"] for it in items])

    def judge_chunk(chunk: list[int]) -> list[dict]:
        # Game 1: the baseline is assistant A; game 2: the positions are swapped (arena-hard's two games).
        games = [(i, j, g) for i in chunk for j in range(n) for g in (0, 1)]
        answers = [(items[i]["baseline"], completions[i][j])[:: -1 if g else 1] for i, j, g in games]
        protocol = {"system_prompts": [ARENA_V2_SYSTEM_PROMPTS[items[i]["category"]] for i, _, _ in games], "version": "v2.0"} if v2 else {}
        verdicts = session.judge.arena_games([items[i]["question"] for i, _, _ in games], [a for a, _ in answers], [b for _, b in answers], **protocol)
        rows = []
        for i in chunk:
            mine = [v for (k, _, _), v in zip(games, verdicts) if k == i]
            rows.append({"key": requests[i].key, "uid": items[i]["uid"], "completions": completions[i], "games": [mine[2 * j : 2 * j + 2] for j in range(n)]})
        return rows

    store = _judge_store(session, bench)
    judged = _judge_all(session, bench, requests, store, judge_chunk)
    if v2:
        return _score_arena_v2(session, bench, items, judged, store)
    stem = result_stem(bench, s.judge)
    judgments_dir = session.out_dir / f"{stem}.judgments"
    lines = [json.dumps({"question_id": row["uid"], "model": session.model_name, "judge": s.judge, "sample": j, "games": row["games"][j]})
             for row in judged for j in range(n)]
    atomic_write_text(judgments_dir / f"{session.model_name}.jsonl", "\n".join(lines) + "\n")
    scored = score_judgments(judgments_dir, data.ARENA_BASELINE, seed=s.seed)[session.model_name]

    def outcome(row: dict, j: int) -> float | None:
        battles = [b for position, game in enumerate(row["games"][j]) for b in game_battles(game["score"], model_is_a=position == 1)]
        return sum(battles) / len(battles) if battles else None

    store.rewrite([{**row, "scores": [outcome(row, j) for j in range(n)]} for row in judged])
    all_games = [g for row in judged for pair in row["games"] for g in pair]
    metrics = {"score": scored["score"], "ci_lower": scored["lower"], "ci_upper": scored["upper"], "skipped_games": scored["skipped"],
               "forced_verdicts": sum(g.get("verdict_source") == "forced" for g in all_games), "games": len(all_games)}
    return {"score": scored["score"], "stderr": None, "ci_lower": scored["lower"], "ci_upper": scored["upper"], "primary_metric": "score",
            "metrics": metrics, "n": len(items), "judgments": f"{stem}.judgments", "baseline": data.ARENA_BASELINE}


def _score_arena_v2(session: Session, bench: str, items: list[dict], judged: list[dict], store) -> dict:
    """Write arena-hard v2.0's judgment and answer files and score each category plain and style-controlled,
    as `show_result.py -c <category> [-f length markdown]` would on them."""
    from semibench.evals.scoring import arena_hard_v2 as v2

    s, n, model = session.settings, session.settings.samples_per_prompt, session.model_name
    stem = result_stem(bench, s.judge)
    judgments_dir, answers_dir = session.out_dir / f"{stem}.judgments", session.out_dir / f"{bench}.answers"
    lines = [json.dumps({"uid": it["uid"], "category": it["category"], "judge": s.judge, "model": model, "baseline": it["baseline_model"],
                         "sample": j, "games": row["games"][j]}, ensure_ascii=False) for it, row in zip(items, judged) for j in range(n)]
    atomic_write_text(judgments_dir / f"{model}.jsonl", "\n".join(lines) + "\n")
    # Every side's style metadata from one offline tokenizer, the baselines' included (their files carry upstream's
    # gpt-4o token_len; mixing the two tokenizers would bias the length feature).
    count = v2.offline_token_counter()
    answers = {model: [v2.answer_row(it["uid"], model, it["question"], row["completions"][j], v2.style_metadata(row["completions"][j], count), sample=j)
                       for it, row in zip(items, judged) for j in range(n)]}
    for it in items:
        answers.setdefault(it["baseline_model"], []).append(
            v2.answer_row(it["uid"], it["baseline_model"], it["question"], it["baseline"], v2.style_metadata(it["baseline"], count)))
    for name, rows in answers.items():
        atomic_write_text(answers_dir / f"{name}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    metrics, notes = {"style_control": "length,markdown"}, []
    for category in v2.CATEGORIES:
        for style, suffix in ((v2.STYLE_FEATURES, ""), ((), "_plain")):
            key = category + suffix
            try:
                scored = v2.score_v2(judgments_dir, answers_dir, category, style, seed=s.seed)
            except ValueError as exc:  # no usable judgment in this category (or none judged under a --limit)
                metrics.update({key: None, f"{key}_ci_lower": None, f"{key}_ci_upper": None})
                notes.append(f"{key}: {exc}")
                continue
            mine = scored["models"][model]
            metrics.update({key: mine["score"], f"{key}_ci_lower": mine["ci_lower"], f"{key}_ci_upper": mine["ci_upper"]})
            metrics[f"{category}_dropped_judgments"] = mine["dropped"]
            notes += [f"{key}: {note}" for note in scored["notes"]]
            if style:
                metrics[f"{category}_feature_coefs"] = scored["feature_coefs"]

    def outcome(row: dict, j: int) -> float | None:
        battles = v2.battle_scores(row["games"][j])
        return sum(battles) / len(battles) if battles else None

    store.rewrite([{**row, "scores": [outcome(row, j) for j in range(n)]} for row in judged])
    all_games = [g for row in judged for pair in row["games"] for g in pair]
    metrics.update({"forced_verdicts": sum(g.get("verdict_source") == "forced" for g in all_games), "games": len(all_games),
                    "offline_tokenizer": v2.OFFLINE_TOKENIZER})
    return {"score": metrics["hard_prompt"], "stderr": None, "ci_lower": metrics["hard_prompt_ci_lower"], "ci_upper": metrics["hard_prompt_ci_upper"],
            "primary_metric": "score", "metrics": metrics, "n": len(items), "judgments": f"{stem}.judgments", "answers": f"{bench}.answers",
            "baseline": dict(v2.BASELINES), "notes": notes}
