"""The project's own files and the rows users hand it: `tasks/` specs (YAML), JSONL rows, boxed answers.

The ground floor of the data path: `tasks` (training prompts), `paper_data` (the paper's datasets) and
the evals read files through these, so a malformed file is the same one-line error everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import yaml

from semibench.config import ConfigError

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"


@cache
def read_spec(name: str) -> dict:
    path = TASKS_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"no task spec {path}; tasks are the .yaml files in {TASKS_DIR}")
    return yaml.safe_load(path.read_text())


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row object) for each non-blank line; a malformed line or file is one clear error
    (a binary file, a JSON array, a line holding a bare scalar used to end in a traceback)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; pass a .jsonl file with one JSON object per line") from None
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{path}:{line_no} is not valid JSON; each line must be one JSON object") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{line_no} is a JSON {type(row).__name__}, not an object; each line must be one JSON object (a .jsonl, not a JSON array)")
        yield line_no, row


def last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{") - 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None
