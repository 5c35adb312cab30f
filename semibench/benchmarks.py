"""The benchmark registry: every benchmark semibench scores, in one table. Everything else reads it:
evaluation, the grid and every report. It imports nothing of semibench, so any stage may read it.

    BENCHMARKS[name] -> Benchmark(name, title, runner, primary_metric, data, judged, validation, ...)

Adding a benchmark is one entry here plus its runner: a function `run(session, bench, source) -> dict`
named by `runner` ("module:function" under `semibench.evals`), imported only when the benchmark runs,
so reading this table (the CLI's help, the reports) never imports an engine, lm-eval or a judge.

The order of the table is the leaderboard's column order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LMEvalTask:
    installed: str  # lm-eval's own task, reading the hub
    local: str  # our tasks/eval/<yaml>'s task: the installed one with the data swapped for local files
    yaml: str
    metrics: tuple[str, ...]  # lm-eval result keys reported; the first is the headline


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str  # its column in tables and figures
    area: str  # "math" | "chat": which table it belongs to
    runner: str  # "module:function" under semibench.evals that generates and scores it
    primary_metric: str  # the result's headline metric, as the runner names it
    data: str  # where its items come from, for people (semibench eval --help, docs)
    local_files: tuple[str, ...] = ()  # under a data dir (--data-dir, else the shipped tasks/data): all must exist
    hub: tuple[str, str | None, str] | None = None  # (dataset, config, split) on the HF hub, else None
    judged: bool = False  # scored by a judge (--judge): results are kept per judge
    validation: bool = False  # held out from training and cheap: scored on intermediate checkpoints too
    decimals: int = 2  # leaderboard digits (a per-token reward of ~1e-3 needs more than a percentage)
    lmeval: LMEvalTask | None = None
    leaderboard_metrics: tuple[str, ...] = ()  # `metrics` keys the leaderboard CSV adds as `<bench>_<key>` columns


_MATH_VERIFY = "evals.math:run_math"
_LMEVAL = "evals.lmeval:run_lmeval"

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("math_heldout", "Held-out math", "math", _MATH_VERIFY, "math_verify",
              "procedural (reasoning-gym), the training source under another seed, minus the training pool", validation=True),
    Benchmark("if_heldout", "Held-out IF (verifiable)", "chat", "evals.instructions:run_if_heldout", "prompt_level_strict",
              "semibench's synthetic requests with IFEval-type constraints, the training source under another seed, minus the "
              "training pool; lm-eval's IFEval checkers, prompt-level strict", validation=True),
    Benchmark("math500", "Math500 (Minerva)", "math", _LMEVAL, "math_verify",
              "MATH-500 via lm-eval's minerva_math500", ("math500/test.jsonl",), ("HuggingFaceH4/MATH-500", "default", "test"),
              lmeval=LMEvalTask("minerva_math500", "semibench_math500", "math500.yaml", ("math_verify,none", "exact_match,none"))),
    # The paper's Math500: its own math prompt, every sample scored by Math-Verify (as NuminaMath and AMC23).
    Benchmark("math500_paper", "Math500 (paper)", "math", _MATH_VERIFY, "math_verify",
              "MATH-500 with the paper's prompt and Math-Verify", ("math500/test.jsonl",), ("HuggingFaceH4/MATH-500", "default", "test")),
    Benchmark("numina_test", "NuminaMath", "math", _MATH_VERIFY, "math_verify", "the filtered NuminaMath-CoT's held-out test split"),
    Benchmark("numina_valid", "NuminaMath valid", "math", _MATH_VERIFY, "math_verify",
              "the filtered NuminaMath-CoT's validation split (checkpoint selection)", validation=True),
    Benchmark("gsm8k", "GSM8K", "math", _LMEVAL, "exact_match_strict_match",
              "GSM8K test via lm-eval's gsm8k_cot_llama", ("gsm8k/test.jsonl",), ("openai/gsm8k", "main", "test"),
              lmeval=LMEvalTask("gsm8k_cot_llama", "semibench_gsm8k", "gsm8k.yaml", ("exact_match,strict-match", "exact_match,flexible-extract"))),
    Benchmark("amc23", "AMC23", "math", _MATH_VERIFY, "math_verify", "AMC 2023, 40 problems", ("amc23/test.jsonl",), ("zwhe99/amc23", None, "test")),
    Benchmark("ifeval", "IFEval", "chat", _LMEVAL, "prompt_level_strict_acc",
              "IFEval via lm-eval", ("ifeval/input_data.jsonl",), ("google/IFEval", None, "train"),
              lmeval=LMEvalTask("ifeval", "semibench_ifeval", "ifeval.yaml", ("prompt_level_strict_acc,none", "inst_level_strict_acc,none",
                                                                               "prompt_level_loose_acc,none", "inst_level_loose_acc,none"))),
    Benchmark("alpaca_eval", "AlpacaEval 2.0", "chat", "evals.pairwise:run_alpaca_eval", "length_controlled_winrate",
              "AlpacaEval 2.0 against gpt4_1106_preview (not shipped: CC BY-NC)", judged=True),
    Benchmark("arena_hard", "ArenaHard v0.1", "chat", "evals.pairwise:run_arena_hard", "score",
              "Arena-Hard v0.1 against gpt-4-0314", judged=True),
    # Headline: upstream's official v2.0 configuration, hard prompts with style control (length + markdown).
    Benchmark("arena_hard_v2", "ArenaHard v2.0 (style-controlled)", "chat", "evals.pairwise:run_arena_hard", "score",
              "Arena-Hard v2.0: 500 hard prompts vs o3-mini-2025-01-31, 250 creative writing vs gemini-2.0-flash-001",
              judged=True, leaderboard_metrics=("style_control", "hard_prompt_plain", "creative_writing", "creative_writing_plain")),
    Benchmark("wildchat_valid", "WildChat valid", "chat", "evals.wildchat:run_wildchat_valid", "reward_len_norm",
              "the paper's WildChat validation split, scored by a reward model (checkpoint selection)", validation=True, decimals=6),
)}

JUDGED = tuple(name for name, b in BENCHMARKS.items() if b.judged)
VALIDATION = tuple(name for name, b in BENCHMARKS.items() if b.validation)


def runner(bench: str):
    """The function that generates and scores `bench`, imported now."""
    import importlib

    module, _, function = BENCHMARKS[bench].runner.partition(":")
    return getattr(importlib.import_module(f"semibench.{module}"), function)
