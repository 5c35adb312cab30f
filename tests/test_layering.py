"""The stages' import rules (docs/architecture.md), read from the code: every `import` and `from ... import`
of every module, lazy ones inside functions included, since a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "semibench"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every semibench module `path` imports (for `from semibench.x import y`, both semibench.x and semibench.x.y,
    since y may be a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "semibench" or name.startswith("semibench.")}


MODULES = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# (who, may not import, why)
RULES = [
    ("semibench.reports", ("semibench.engines", "semibench.training", "semibench.evals", "semibench.grid", "semibench.perf", "semibench.gpubench"),
     "reports read files (runs/, eval JSON): they never train, generate or score"),
    ("semibench.evals", ("semibench.training", "semibench.grid", "semibench.reports"), "evaluation scores any checkpoint, a run's or not"),
    ("semibench.rewards", ("semibench.training", "semibench.evals", "semibench.grid", "semibench.reports"),
     "rewards score completions for the trainer; they know nothing of how it trains"),
    ("semibench.engines", ("semibench.training", "semibench.evals", "semibench.rewards", "semibench.grid", "semibench.reports"),
     "engines serve any caller"),
    ("semibench.training", ("semibench.evals", "semibench.grid", "semibench.reports"), "training writes checkpoints; the grid evaluates them"),
]
CONTRACT = ("semibench.hardware", "semibench.presets", "semibench.config", "semibench.configfile", "semibench.runs", "semibench.models", "semibench.datafiles",
            "semibench.benchmarks", "semibench.stats", "semibench.sync", "semibench.instructions", "semibench.constraints", "semibench.tasks",
            "semibench.paper_data",
            "semibench.trackers")
STAGES = ("semibench.training", "semibench.engines", "semibench.evals", "semibench.reports", "semibench.rewards", "semibench.grid",
          "semibench.study", "semibench.perf", "semibench.gpubench", "semibench.cli")


@pytest.mark.parametrize("who,forbidden,why", RULES, ids=[r[0] for r in RULES])
def test_stage_imports(who, forbidden, why):
    bad = sorted(f"{mod} imports {dep}" for mod, deps in MODULES.items() if within(mod, who) for dep in deps if within(dep, *forbidden))
    assert not bad, f"{why}: {bad}"


def test_contract_imports_no_stage():
    """The shared contract (config, runs, models, data files, the benchmark registry, ...) sits under every stage."""
    bad = sorted(f"{mod} imports {dep}" for mod in CONTRACT for dep in MODULES[mod] if within(dep, *STAGES))
    assert not bad, bad


def test_losses_are_pure():
    """Loss functions take tensors and return tensors: nothing of semibench, so they read and test alone."""
    assert MODULES["semibench.training.losses"] == set()


def test_benchmark_registry_imports_nothing():
    """Every stage reads the registry, so it must import none of them (runners are named, not imported)."""
    assert MODULES["semibench.benchmarks"] == set()


def test_only_the_entry_point_imports_the_cli():
    bad = sorted(mod for mod, deps in MODULES.items() if not within(mod, "semibench.cli", "semibench.__main__") and any(within(d, "semibench.cli") for d in deps))
    assert not bad, bad


def test_task_specs_are_data():
    """tasks/ holds specs and data that any tool can read: no Python that could import semibench."""
    assert not list((ROOT / "tasks").rglob("*.py"))


def test_no_import_cycles_between_modules():
    """Module-level imports (lazy ones excluded: they run after both modules loaded) form no cycle."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        deps = set()
        for node in tree.body:  # top level only
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("semibench"):
                deps |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("semibench")}
        graph[module_name(path)] = {d for d in deps if d in MODULES and d != module_name(path)}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return trail + [node, dep]
            if dep not in state and (cycle := visit(dep, trail + [node])):
                return cycle
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            assert (cycle := visit(module, [])) is None, " -> ".join(cycle)


def test_rules_see_real_imports():
    """The reader finds lazy imports too: train imports the engines inside a function or at the top, and must be seen."""
    assert any(within(d, "semibench.engines") for d in MODULES["semibench.training.train"])
    assert "semibench.evals.evaluate" in MODULES["semibench.grid"]
