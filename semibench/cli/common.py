"""What every command shares: the app, one-line failures, rich tables, durations."""

from __future__ import annotations

import os

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline, semi-online and online DPO/GRPO for LLMs.")


def is_main_rank() -> bool:
    """Rank 0, or not launched by torchrun: the process that talks to the user."""
    return os.environ.get("RANK", "0") == "0"


def fail(message: str) -> None:
    """A user mistake: one red line naming the fix, exit code 2."""
    if is_main_rank():  # under torchrun every rank fails alike; say it once
        typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def table(title: str, columns: list[str], rows: list[list], note: str = "") -> None:
    """Print a benchmark's rows as a rich table: first column left, the rest right, floats to 2 decimals.
    Its caption names the machine, so a number is never read apart from the CPU that produced it."""
    from rich.console import Console
    from rich.table import Table

    out = Table(title=title, caption="\n".join(filter(None, [note, machine_line()])))
    for i, column in enumerate(columns):
        out.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*("-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
    Console(width=180).print(out)


def machine_line(**dtypes: str) -> str:
    """The first line of a run, an eval, a grid and a benchmark: which hardware, which dtypes it chose."""
    from semibench.hardware import this_machine

    chosen = ", ".join(f"{name.replace('_', ' ')} {value or 'none'}" for name, value in dtypes.items())
    return f"machine: {this_machine().describe()}" + (f"; dtypes: {chosen}" if chosen else "")


def read_experiment(path, command: str):
    """The --config file checked for `command` (train, grid or eval); an empty one without --config."""
    from pathlib import Path

    from semibench.configfile import ExperimentFile, load
    from semibench.evals.settings import EvalSettings

    return load(path, command, EvalSettings) if path is not None else ExperimentFile(Path(), None, {}, {}, {})


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the user passed the option `name` (a parameter name) on the command line, rather than its default
    applying: a --config file's value must win over a default but not over a flag."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def comma_list(text: str | None) -> tuple[str, ...] | None:
    """"a,b" -> ("a", "b"); None or "" -> None (the flag was not given)."""
    return tuple(x.strip() for x in text.split(",") if x.strip()) if text else None


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def quiet_library_bars() -> None:
    """Silence the tqdm bars of lm-eval, datasets and vLLM under a command that shows its own rich
    progress (they would interleave with it). tqdm reads this at import, so call it first."""
    os.environ.setdefault("TQDM_DISABLE", "1")


def quiet_transformers() -> None:
    """No transformers progress bars or warnings: our own progress is the one that matters."""
    import logging

    import transformers

    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def settings_options(cls):
    """Decorator: the command also takes every field of the settings dataclass `cls` as an option (its flag
    and help from the field's metadata) and receives them as one `settings: cls`. The dataclass stays the
    one schema: a new field is a new option, with no second list to keep in step."""
    import dataclasses
    import functools
    import inspect
    import typing

    hints = typing.get_type_hints(cls)
    options = []
    for f in dataclasses.fields(cls):
        kind, default = hints[f.name], f.default
        if typing.get_origin(kind) is tuple:  # a comma-separated string on the command line
            kind, default = str, ",".join(default)
        elif type(None) in typing.get_args(kind):  # `T | None` -> Optional[T], which typer reads
            kind = typing.Optional[next(a for a in typing.get_args(kind) if a is not type(None))]
        option = typer.Option(default, f.metadata["flag"], help=f.metadata["help"], **f.metadata["cli"])
        options.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))

    def wrap(command):
        own = [p for name, p in inspect.signature(command, eval_str=True).parameters.items() if name != "settings"]

        @functools.wraps(command)
        def with_settings(*args, **kwargs):
            values = {f.name: kwargs.pop(f.name) for f in dataclasses.fields(cls)}
            return command(*args, settings=cls(**values), **kwargs)

        del with_settings.__wrapped__  # typer reads the signature below, not the command's own
        with_settings.__signature__ = inspect.Signature(own + options)
        with_settings.__annotations__ = {p.name: p.annotation for p in own + options}
        return with_settings

    return wrap
