"""`semibench bench step` on the tiny preset: the breakdown reads each run's metrics and adds up."""

import pytest

from semibench import perf


def test_step_breakdown_reads_the_runs_metrics():
    rows = perf.step_breakdown("tiny", "math", 3, {})
    assert [r["objective"] for r in rows] == ["dpo", "grpo"]
    for row in rows:
        assert row["steps"] == 2  # step 0 pays the warm-up and is left out
        assert row["total_s"] == pytest.approx(sum(row[p] for p in perf.PHASES)) and row["total_s"] > 0
        assert row["generated_tokens"] > 0 and row["tokens_per_s"] > 0
        # The generator's share of its ceiling: its tokens/s over (matmul GFLOP/s / 2 N FLOPs per token).
        assert 0 < row["generate_pct_of_ceiling"] == pytest.approx(100 * row["generate_tokens_per_s"] / row["generate_ceiling_tokens_per_s"])
        assert row["generate_ceiling_tokens_per_s"] > row["generate_tokens_per_s"] > 0


def test_step_breakdown_runs_the_objectives_asked_for_and_the_cli_refuses_an_unknown_one():
    rows = perf.step_breakdown("tiny", "math", 2, {}, ("group_dpo",))
    assert [r["objective"] for r in rows] == ["group_dpo"] and rows[0]["time/train"] > 0
    from typer.testing import CliRunner

    from semibench.cli import app

    result = CliRunner().invoke(app, ["bench", "step", "--preset", "tiny", "--objectives", "dpo,ppo"])
    assert result.exit_code != 0 and "unknown objective 'ppo' in --objectives" in result.output


def test_trl_gets_the_precision_semibench_resolved_on_every_cpu_class():
    """`auto` on an AVX2 CPU trains in fp32, so TRL must not be handed bf16 (it would emulate it and lose
    time semibench does not); on an AVX512-BF16 CPU both sides run bf16 autocast."""
    import dataclasses

    from semibench import config
    from semibench.hardware import Machine

    resolved = config.resolve("smol", perf.semibench_overrides("dpo", "hf", 3))  # resolve() fixes `auto` for this machine
    cfg = dataclasses.replace(resolved, model=dataclasses.replace(resolved.model, autocast_dtype="auto"))
    zen3 = Machine("cpu", "AMD EPYC Zen 3", "x86_64", "AVX2", (), 2)
    zen5 = Machine("cpu", "AMD EPYC Zen 5", "x86_64", "AVX512", ("AVX512-BF16",), 2)
    assert perf.compute_precision(cfg, zen3) == "float32" and perf.compute_precision(cfg, zen5) == "bfloat16"
