"""The benchmark data shipped in tasks/data: found first after --data-dir, with no hub and no sibling folder.

Product code must never look outside the project (a user's clone has no ../shared/data); the fixture
copy there is only used here to check the shipped files are byte-identical to it.
"""

import hashlib
import re
import time
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import constants as hub_constants

from semibench import constraints
from semibench.benchmarks import BENCHMARKS
from semibench.evals import data as benchmarks
from semibench.evals import math as math_eval

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "tasks" / "data"
README = SHIPPED / "README.md"
# Default grid (math_heldout, ifeval) and `semibench eval`'s CPU set; the rows each must hold.
ROWS = {"ifeval": 541, "math500": 500, "gsm8k": 1319, "amc23": 40, "arena_hard": 500, "arena_hard_v2": 750}
SHIPPED_FILES = ("ifeval/input_data.jsonl", "math500/test.jsonl", "gsm8k/test.jsonl", "gsm8k/LICENSE", "amc23/test.jsonl",
                 "arena-hard-v0.1/question.jsonl", "arena-hard-v0.1/model_answer/gpt-4-0314.jsonl", "arena-hard-v0.1/LICENSE",
                 "arena-hard-v2.0/question.jsonl", "arena-hard-v2.0/model_answer/o3-mini-2025-01-31.jsonl",
                 "arena-hard-v2.0/model_answer/gemini-2.0-flash-001.jsonl", "arena-hard-v2.0/LICENSE")


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """No --data-dir, hub offline with an empty cache, and any hub call fails the test."""
    monkeypatch.delenv("SEMIBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))

    def hub_called(*args, **kwargs):
        pytest.fail(f"the hub was called: {args}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub_called)  # the hub cache (empty here) may be read
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", hub_called)


@pytest.mark.parametrize("bench", ["math_heldout", "ifeval", "gsm8k", "math500", "amc23", "arena_hard", "arena_hard_v2"])
def test_default_and_cpu_benchmarks_resolve_to_the_shipped_data(bench, no_hub):
    source = benchmarks.resolve(bench, None)
    if bench == "math_heldout":
        assert source.where == "procedural"
        return
    assert source.where == "local" and source.path is not None
    assert source.path.resolve().is_relative_to(SHIPPED), f"{bench} resolved to {source.path}, not under {SHIPPED}"
    assert str(SHIPPED) in source.description


def test_data_dir_still_comes_first(no_hub, tmp_path):
    mine = tmp_path / "mine"
    (mine / "amc23").mkdir(parents=True)
    (mine / "amc23" / "test.jsonl").write_text('{"problem": "1+1", "answer": 2}\n')
    assert benchmarks.resolve("amc23", mine).path == mine / "amc23" / "test.jsonl"
    # A data dir that lacks a benchmark's files does not hide the shipped ones.
    assert benchmarks.resolve("math500", mine).path.resolve() == SHIPPED


def test_shipped_items_have_the_published_row_counts(no_hub):
    amc = math_eval.file_items("amc23", benchmarks.resolve("amc23", None))
    assert len(amc) == ROWS["amc23"] and amc[0][1] == "27"  # 27.0 in the file
    arena = benchmarks.arena_items(benchmarks.resolve("arena_hard", None))
    assert len(arena) == ROWS["arena_hard"] and all(item["question"] and item["baseline"] for item in arena)
    from semibench.evals.scoring.arena_hard_v2 import BASELINES

    v2 = benchmarks.arena_items(benchmarks.resolve("arena_hard_v2", None), BASELINES)
    assert len(v2) == ROWS["arena_hard_v2"] and all(item["question"] and item["baseline"] for item in v2)
    assert {c: sum(i["category"] == c and i["baseline_model"] == b for i in v2) for c, b in BASELINES.items()} == {"hard_prompt": 500, "creative_writing": 250}
    for bench in ("ifeval", "math500", "gsm8k"):
        source = benchmarks.resolve(bench, None)
        rows = benchmarks.read_jsonl(source.path / BENCHMARKS[bench].local_files[0])
        assert len(rows) == ROWS[bench], bench


def test_lm_eval_tasks_read_the_shipped_files(monkeypatch, tmp_path):
    """tasks/eval/*.yaml rendered with the resolved dir: lm-eval itself sees every row (no hub, data from tasks/data)."""
    monkeypatch.delenv("SEMIBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("hub download"))
    from lm_eval.tasks import TaskManager

    from semibench.evals import lmeval

    constraints.prepare()
    data_dir = benchmarks.resolve("ifeval", None).path
    manager = TaskManager(include_path=str(lmeval.render_local_tasks(data_dir, tmp_path / "tasks")))
    names = [BENCHMARKS[b].lmeval.local for b in ("ifeval", "math500", "gsm8k")]
    tasks = manager.load(names)["tasks"]
    for bench, name in zip(("ifeval", "math500", "gsm8k"), names):
        assert len(list(tasks[name].eval_docs)) == ROWS[bench], bench


def test_missing_benchmark_is_one_line_and_makes_no_hub_call(no_hub):
    """AlpacaEval is not shipped (CC BY-NC): with the hub offline it is missing at once, in one line."""
    start = time.monotonic()
    with pytest.raises(benchmarks.DataMissing) as missing:
        benchmarks.resolve("alpaca_eval", None)
    assert time.monotonic() - start < 2
    message = str(missing.value)
    assert "\n" not in message
    assert message.startswith("alpaca_eval: no data; pass --data-dir DIR with alpaca_eval/reference_outputs_gpt4_1106_preview.json")
    assert benchmarks.alpaca_df_gamed(None) is None


def test_offline_hub_dataset_is_one_line_without_retries(monkeypatch, tmp_path, capfd):
    """A hub-only dataset, hub offline: DataMissing at once, nothing printed, no sleep (no retry loop)."""
    monkeypatch.delenv("SEMIBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)  # as if set after the import: still no request
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail(f"slept {s}s: a retry"))
    from huggingface_hub.utils import _http

    monkeypatch.setattr(_http, "get_session", lambda: pytest.fail("a request was attempted while offline"))
    with pytest.raises(benchmarks.DataMissing) as missing:
        benchmarks.resolve("numina_test", None)
    assert "\n" not in str(missing.value) and str(missing.value).startswith("numina_test: no data; pass --data-dir DIR with numina/train.jsonl")
    out, err = capfd.readouterr()
    assert "Retrying" not in out + err and "thrown while requesting" not in out + err


def test_online_unreachable_hub_is_one_quiet_attempt(monkeypatch, tmp_path, capfd):
    """Online but unreachable: no retry loop (no backoff sleeps), no warnings; the caller's line says the rest."""
    import httpx2
    from huggingface_hub.utils import _http

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail(f"slept {s}s: a retry"))
    requests = []

    class Unreachable:
        def request(self, method, url, **kwargs):
            requests.append(url)
            raise httpx2.ConnectError("[Errno -2] Name or service not known")

        stream = request

    monkeypatch.setattr(_http, "get_session", lambda: Unreachable())
    monkeypatch.setattr(_http, "close_session", lambda: None)
    assert benchmarks._hub_file(benchmarks.ALPACA_HUB, "df_gamed.csv") is None
    # hf_hub_download's own two tries (a quick probe, then the download call), each once: 6 each with the retry loop.
    assert len(requests) <= 2, requests
    out, err = capfd.readouterr()
    assert "Retrying" not in out + err and "thrown while requesting" not in out + err
    # The retry loop and the loggers are restored afterwards.
    assert _http._http_backoff_base.__name__ == "_http_backoff_base"


def test_offline_reads_the_hub_cache(monkeypatch, tmp_path):
    """Offline is not 'never': a file already in the hub cache is used, without a request."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub-cache"
    snapshot = cache / "datasets--tatsu-lab--alpaca_eval" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "df_gamed.csv").write_text("x\n")
    (cache / "datasets--tatsu-lab--alpaca_eval" / "refs").mkdir()
    (cache / "datasets--tatsu-lab--alpaca_eval" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("hub download while offline"))
    assert benchmarks.alpaca_df_gamed(None) == snapshot / "df_gamed.csv"


def test_product_code_never_looks_in_a_sibling_folder():
    """No path built to ../shared (or any folder beside the checkout) anywhere in semibench/."""
    pattern = re.compile(r"""["']shared["']|\.\./shared|shared/data|parents\[[2-9]\]|SHARED_DATA""")
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for path in sorted((ROOT / "semibench").rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, "\n".join(offenders)
    assert not hasattr(benchmarks, "SHARED_DATA_DIR")
    assert all(d.resolve().is_relative_to(ROOT) for d in benchmarks.data_dirs(None))


def _readme_table() -> dict[str, tuple[str, str]]:
    """file -> (rows, sha256) from tasks/data/README.md's table."""
    table = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            table[cells[0].strip("`")] = (cells[2], cells[5].strip("`"))
    return table


def test_shipped_files_match_the_readme():
    shipped = sorted(str(p.relative_to(SHIPPED)) for p in SHIPPED.rglob("*") if p.is_file() and p != README)
    assert shipped == sorted(SHIPPED_FILES)  # no AlpacaEval (CC BY-NC), no gsm8k/train.jsonl
    table = _readme_table()
    assert sorted(table) == sorted(SHIPPED_FILES)
    for name, (rows, sha) in table.items():
        data = (SHIPPED / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha, name
        if name.endswith(".jsonl"):
            assert int(rows) == data.count(b"\n"), name
    assert "AlpacaEval" in README.read_text() and "--data-dir" in README.read_text()


def test_shipped_files_are_byte_identical_to_the_fixture_copy(shared_data):
    for name in SHIPPED_FILES:
        if name.startswith("arena-hard-v2.0/") and not (shared_data / name).is_file():
            continue  # not in the fixture copy; test_arena_hard_v2 checks these against upstream's git blobs
        assert (SHIPPED / name).read_bytes() == (shared_data / name).read_bytes(), name
