"""Tests never touch the network and never write outside tmp dirs."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """One model cache per test session (tiny builds in ~2 s); SEMIBENCH_CACHE keeps a warm one across sessions."""
    if "SEMIBENCH_CACHE" not in os.environ:
        os.environ["SEMIBENCH_CACHE"] = str(tmp_path_factory.mktemp("semibench-cache"))
    return Path(os.environ["SEMIBENCH_CACHE"])


@pytest.fixture(scope="session")
def tiny_grid(tmp_path_factory) -> Path:
    """`semibench grid --preset tiny --tasks math`, run once per session by the real CLI: <tmp>/runs and the
    leaderboards in <tmp>/lb. Read it; a test that must change it copies it first."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("grid")
    subprocess.run([sys.executable, "-m", "semibench", "grid", "--tasks", "math", "--preset", "tiny", "--out", str(out / "runs"),
                    "--leaderboard-out", str(out / "lb")], check=True, capture_output=True, text=True)
    return out
