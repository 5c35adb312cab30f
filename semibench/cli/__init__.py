"""The `semibench` command. Each command parses, resolves a config and calls one library function.

Heavy modules (torch, transformers) are imported inside commands so `semibench --help` is instant.
User mistakes (`ConfigError`) become one red line and exit code 2. One module per command family;
importing them registers their commands on `app`.
"""

from __future__ import annotations

import sys

import typer

from semibench.allocator import keep_freed_memory
from semibench.cli import train, grid, evals, reports, bench  # noqa: F401, I001  (register their commands, in --help order)
from semibench.cli.common import app
from semibench.config import ConfigError

__all__ = ["app", "main"]


def main() -> None:
    keep_freed_memory()  # before any tensor exists, and inherited by every process a command starts
    try:
        app()
    except ConfigError as exc:  # raised from inside a command's library call
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
