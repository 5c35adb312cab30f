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
