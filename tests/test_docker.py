"""docker/: the commands in its README use real config keys and CLI flags, and the images pin what
pyproject pins. (The images themselves are built where Docker runs; this machine has no engine.)"""

import re
from pathlib import Path

from typer.testing import CliRunner

from semibench import config
from semibench.cli import app
from semibench.presets import PRESETS

DOCKER = Path(__file__).resolve().parents[1] / "docker"
README = (DOCKER / "README.md").read_text()
PYPROJECT = (DOCKER.parent / "pyproject.toml").read_text()


def pinned(name: str, text: str) -> str:
    return re.search(rf'"?{re.escape(name)}==([0-9][^"\s;]*)', text).group(1)


def test_readme_set_keys_and_presets_exist():
    keys = set(re.findall(r"--set ([a-z_]+\.[a-z_]+)=", README))
    assert keys and keys <= set(config.all_keys())
    for preset in re.findall(r"--preset (\w+)", README) + re.findall(r"presets show (\w+)", README):
        assert preset in PRESETS


def test_readme_cli_flags_exist():
    runner = CliRunner()
    for command in ("train", "grid"):
        help_text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"}).output
        used = set(re.findall(rf"semibench {command} [^\n]*", README))  # also `torchrun ... -m semibench train`
        for line in used:
            for flag in re.findall(r"(--[a-z][a-z-]+)", line):
                if flag not in ("--set", "--help"):
                    assert flag in help_text, (command, flag)


def test_images_pin_the_projects_torch_and_a_vllm_that_accepts_its_transformers():
    torch = pinned("torch", PYPROJECT)
    for dockerfile in ("Dockerfile.gpu", "Dockerfile.cpu"):
        assert pinned("torch", (DOCKER / dockerfile).read_text()) == torch
    # vllm 0.32.0 requires torch==2.13.0 and transformers>=5.16.1,<5.20 (its wheel's metadata).
    assert pinned("vllm", (DOCKER / "Dockerfile.gpu").read_text()) == "0.32.0" and torch == "2.13.0"
    major, minor, _ = (int(x) for x in pinned("transformers", PYPROJECT).split("."))
    assert (5, 16) <= (major, minor) < (5, 20)
