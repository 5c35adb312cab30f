"""semibench: offline, semi-online and online DPO and GRPO for LLMs, compared.

The command line is `semibench` (train, grid, eval and the reports). From Python, the results it writes,
as pandas DataFrames (docs/api.md):

    import semibench
    semibench.read_runs("runs")      # one row per run
    semibench.read_metrics("runs")   # per-step metrics, tidy, with wall seconds and tokens
    semibench.read_evals("runs")     # per checkpoint and benchmark; the seed model at step 0; the selected checkpoint marked
    semibench.compare(a, b)          # `semibench compare A B`
    semibench.verdicts("runs")       # `semibench verdicts runs`

They are imported on first use (`semibench.reports.frames`), so `import semibench` and the CLI's start do
not pay for pandas.
"""

__all__ = ["compare", "read_evals", "read_metrics", "read_runs", "verdicts"]


def __getattr__(name: str):
    if name in __all__:
        from semibench.reports import frames

        return getattr(frames, name)
    raise AttributeError(f"module 'semibench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
