"""Arena-Hard v2.0: the shipped data, the judge protocol and the scores, checked against arena-hard-auto itself.

Upstream's files (show_result.py, utils/, gen_judgment.py at HEAD 196f6b8) are read from a git mirror or a
checkout: $ARENA_HARD_AUTO (a clone, or a bare git dir), else /work/.mirror/lmarena+arena-hard-auto/repo. Tests
that need them skip, saying so, when neither is there. Nothing of upstream is committed here.
"""

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from semibench.cli import app
from semibench.evals import judges
from semibench.evals.scoring import arena_hard_v2 as v2

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tasks" / "data" / "arena-hard-v2.0"
UPSTREAM_FILES = ("show_result.py", "utils/math_utils.py", "utils/judge_utils.py", "utils/add_markdown_info.py", "gen_judgment.py")
# Agreement tolerances, in points. Same seed: upstream prints percent rounded to 0.1 (and the interval as rounded
# distances), so scores agree to 0.05 and edges to 0.1 plus float noise. Other draws (our seed 1 vs upstream's
# seed 0): the score is a mean (plain) or median (style) of 100 bootstrap rounds and the edges 5% / 95% quantiles
# of them; with ~750 battles per model (creative writing, the smaller category) the CI half-width is ~3 points,
# so the Monte-Carlo sd is ~0.2 points for the score and ~0.4 for an edge: 4 sd of each.
SAME_SEED_SCORE, SAME_SEED_EDGE = 0.051, 0.11
OTHER_SEED_SCORE, OTHER_SEED_EDGE = 0.8, 1.6
runner = CliRunner()


def _upstream_source() -> tuple[str, Path] | None:
    candidates = [os.environ.get("ARENA_HARD_AUTO"), "/work/.mirror/lmarena+arena-hard-auto/repo"]
    for c in filter(None, candidates):
        path = Path(c)
        if (path / "show_result.py").is_file():
            return "tree", path
        if (path / "HEAD").is_file() and subprocess.run(["git", "--git-dir", str(path), "cat-file", "-e", "HEAD:show_result.py"],
                                                        capture_output=True).returncode == 0:
            return "git", path
    return None


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    """A directory holding upstream's scoring files, or skip."""
    found = _upstream_source()
    if found is None:
        pytest.skip("arena-hard-auto not found: set ARENA_HARD_AUTO to a clone (or bare git dir) of github.com/lmarena/arena-hard-auto")
    kind, path = found
    out = tmp_path_factory.mktemp("arena-hard-auto")
    for name in UPSTREAM_FILES:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        if kind == "tree":
            (out / name).write_bytes((path / name).read_bytes())
        else:
            (out / name).write_bytes(subprocess.run(["git", "--git-dir", str(path), "show", f"HEAD:{name}"], capture_output=True, check=True).stdout)
    return out


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_shipped_files_are_upstreams_blobs():
    found = _upstream_source()
    if found is None or found[0] != "git":
        pytest.skip("needs arena-hard-auto as a git dir (ARENA_HARD_AUTO or /work/.mirror) to compare blob ids")
    tree = subprocess.run(["git", "--git-dir", str(found[1]), "ls-tree", "-r", "HEAD", "data/arena-hard-v2.0/"], capture_output=True, text=True, check=True).stdout
    blobs = {line.split("\t")[1]: line.split()[2] for line in tree.splitlines()}
    for name in ("question.jsonl", "model_answer/o3-mini-2025-01-31.jsonl", "model_answer/gemini-2.0-flash-001.jsonl"):
        assert _blob_id((DATA / name).read_bytes()) == blobs[f"data/arena-hard-v2.0/{name}"], name


def _baseline_rows(model: str) -> list[dict]:
    return v2.read_jsonl_rows(DATA / "model_answer" / f"{model}.jsonl")


@pytest.mark.parametrize("model", list(v2.BASELINES.values()))
def test_markdown_counts_equal_upstreams_metadata(model):
    """Our add_markdown_info port gives the counts upstream stored in the shipped answers, for every answer."""
    rows = _baseline_rows(model)
    for row in rows:
        mine = v2.style_metadata(v2.answer_text(row), lambda text: row["metadata"]["token_len"])
        assert mine == row["metadata"], row["uid"]
        assert list(mine) == list(row["metadata"])  # key order matters: show_result reads the values in order


def test_markdown_counts_equal_upstreams_function(upstream):
    """The same on synthetic markdown, against upstream's own count_markdown_elements / remove_pattern."""
    source = (upstream / "utils" / "add_markdown_info.py").read_text().replace("import tiktoken\n", "")
    namespace: dict = {}
    exec(compile(source, "add_markdown_info.py", "exec"), namespace)
    texts = ["# T\n## U\n- a\n* b\n1. c\n  2. d\n**x** __y__ **z\nw**\n```py\n# not a header\n- no\n```\n###### six", "plain", "#no\n#  yes"]
    for text in texts:
        expected = namespace["count_markdown_elements"](namespace["remove_pattern"](text, re.compile("```([^`]*)```")), suffix="")
        assert v2.count_markdown_elements(v2.remove_code_blocks(text)) == expected


def test_judge_prompts_are_upstreams(upstream):
    namespace: dict = {}
    exec((upstream / "utils" / "judge_utils.py").read_text(), namespace)
    settings = namespace["JUDGE_SETTINGS"]
    for category, baseline in v2.BASELINES.items():
        assert settings[category]["baseline"] == baseline
        assert judges.ARENA_V2_SYSTEM_PROMPTS[category] == settings[category]["system_prompt"], category
    assert judges.ARENA_SYSTEM_PROMPT == settings["arena-hard-v0.1"]["system_prompt"]


def test_get_score_is_upstreams(upstream):
    tree = ast.parse((upstream / "gen_judgment.py").read_text())
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "get_score")
    namespace: dict = {}
    exec(compile(ast.Module([function], []), "gen_judgment.py", "exec"), namespace)
    patterns = list(v2.REGEX_PATTERNS)
    judgments = ["My final verdict is [[A>B]].", "[[a>>b]] then [[B>A]]", "[B=A]", "no verdict", "[[A>B]] and [A<B]", "[[]] [[A=B]]", "[[AB]]"]
    for text in judgments:
        assert v2.get_score(text) == namespace["get_score"](text, patterns), text


def test_unusable_verdicts_drop_the_judgment_as_upstream():
    assert v2.battle_scores([{"score": "A>>B"}, {"score": "A>B"}]) == [1, 0, 0, 0]  # game 2: model is A and wins; game 1: 3 losses
    assert v2.battle_scores([{"score": "B<A"}, {"score": "B=A"}]) == [0.5, 0]
    for games in ([{"score": None}, {"score": "A>B"}], [{"score": "A>B"}], [{"score": "A>B"}, None], [{"score": "AB"}, {"score": "A>B"}]):
        assert v2.battle_scores(games) is None


# ---- agreement with show_result.py ----

MODELS = {"model-strong": 1.0, "model-mid": 0.0, "model-long": -0.5}  # strength; model-long writes long, bulleted answers


def _synthetic_answer(rng, long: bool) -> str:
    parts = [f"## Part {k}" if rng.random() < (0.6 if long else 0.2) else "" for k in range(3)]
    bullets = ["- point" for _ in range(rng.integers(0, 8 if long else 3))]
    bold = ["**bold**" for _ in range(rng.integers(0, 4))]
    words = " ".join(["word"] * int(rng.integers(50, 900 if long else 400)))
    return "\n".join(p for p in parts + bullets + bold + [words] if p)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """arena-hard's data/arena-hard-v2.0 layout: three judged models' answers (with metadata) and judgments whose
    verdicts favour longer answers, plus the two real baselines with upstream's metadata."""
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("upstream-run")
    bench = root / "data" / "arena-hard-v2.0"
    (bench / "model_answer").mkdir(parents=True)
    (bench / "model_judgment" / "gpt-4.1").mkdir(parents=True)
    questions = v2.read_jsonl_rows(DATA / "question.jsonl")
    baseline_meta = {}
    for model in v2.BASELINES.values():
        (bench / "model_answer" / f"{model}.jsonl").write_bytes((DATA / "model_answer" / f"{model}.jsonl").read_bytes())
        baseline_meta[model] = {r["uid"]: r["metadata"] for r in _baseline_rows(model)}
    labels = ["A>>B", "A>B", "A=B", "B>A", "B>>A"]
    for model, strength in MODELS.items():
        answers, judgments = [], []
        for q in questions:
            text = _synthetic_answer(rng, model == "model-long")
            meta = v2.style_metadata(text, lambda t: len(t.split()))
            answers.append(v2.answer_row(q["uid"], model, q["prompt"], text, meta))
            base = baseline_meta[v2.BASELINES[q["category"]]][q["uid"]]
            edge = strength + 1.5 * (meta["token_len"] - base["token_len"]) / (meta["token_len"] + base["token_len"])
            games = []
            for model_is_a in (False, True):
                z = edge + rng.normal()
                k = int(np.digitize(z, [-1.5, -0.4, 0.4, 1.5]))  # 0: strongly worse .. 4: strongly better
                label = labels[4 - k] if model_is_a else labels[k]
                games.append(None if rng.random() < 0.02 else {"score": label, "judgment": "..."})
            judgments.append({"uid": q["uid"], "category": q["category"], "judge": "gpt-4.1", "model": model,
                              "baseline": v2.BASELINES[q["category"]], "games": games})
        (bench / "model_answer" / f"{model}.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
        (bench / "model_judgment" / "gpt-4.1" / f"{model}.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judgments))
    return root


def _run_upstream(upstream: Path, root: Path, category: str, features: list[str], seed: int) -> dict[str, tuple[float, float, float]]:
    """show_result.py's printed leaderboard: model -> (score, lower, upper) in points, after np.random.seed(seed)."""
    args = ["show_result.py", "-j", "gpt-4.1", "-c", category] + (["-f", *features] if features else [])
    code = (f"import sys, runpy, numpy; sys.path.insert(0, {str(upstream)!r}); numpy.random.seed({seed}); sys.argv = {args!r}; "
            f"runpy.run_path({str(upstream / 'show_result.py')!r}, run_name='__main__')")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as our fit runs (see style_scores); 8x faster on 2 busy cores
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {}
    for line in done.stdout.splitlines():
        match = re.match(r"^\s*\d+\s+(\S+)\s+([\d.]+)\s+\(-([\d.]+) / \+([\d.]+)\)", line)
        if match and match.group(1) in MODELS:
            score, minus, plus = map(float, match.groups()[1:])
            rows[match.group(1)] = (score, score - minus, score + plus)
    assert set(rows) == set(MODELS), done.stdout[-3000:]
    return rows


def _differences(ours: dict, theirs: dict) -> tuple[float, float]:
    score = max(abs(ours[m]["score"] - theirs[m][0]) for m in MODELS)
    edge = max(max(abs(ours[m]["ci_lower"] - theirs[m][1]), abs(ours[m]["ci_upper"] - theirs[m][2])) for m in MODELS)
    return score, edge


@pytest.mark.parametrize("category", v2.CATEGORIES)
@pytest.mark.parametrize("features", [[], ["length", "markdown"]], ids=["plain", "style"])
def test_scores_agree_with_show_result(upstream, synthetic, category, features, record_property):
    theirs = _run_upstream(upstream, synthetic, category, features, seed=0)
    judgments, answers = synthetic / "data" / "arena-hard-v2.0" / "model_judgment" / "gpt-4.1", synthetic / "data" / "arena-hard-v2.0" / "model_answer"
    same = v2.score_v2(judgments, answers, category, tuple(features), seed=0)["models"]
    other = v2.score_v2(judgments, answers, category, tuple(features), seed=1)["models"]
    same_diff, other_diff = _differences(same, theirs), _differences(other, theirs)
    print(f"{category} {'style' if features else 'plain'}: same seed max |score| diff {same_diff[0]:.3f}, max |edge| diff {same_diff[1]:.3f}; "
          f"other seed {other_diff[0]:.3f}, {other_diff[1]:.3f}")
    record_property("differences", {"same_seed": same_diff, "other_seed": other_diff})
    assert same_diff[0] <= SAME_SEED_SCORE and same_diff[1] <= SAME_SEED_EDGE, (same, theirs)
    assert other_diff[0] <= OTHER_SEED_SCORE and other_diff[1] <= OTHER_SEED_EDGE, (other, theirs)


def test_style_control_moves_the_long_model(synthetic):
    """Verdicts here favour length: controlling for it lowers the long-answer model more than the others."""
    judgments, answers = synthetic / "data" / "arena-hard-v2.0" / "model_judgment" / "gpt-4.1", synthetic / "data" / "arena-hard-v2.0" / "model_answer"
    plain = v2.score_v2(judgments, answers, "hard_prompt")["models"]
    styled = v2.score_v2(judgments, answers, "hard_prompt", ("length", "markdown"))
    assert styled["feature_coefs"]["length"] > 0
    drop = {m: plain[m]["score"] - styled["models"][m]["score"] for m in MODELS}
    assert drop["model-long"] > drop["model-strong"]


def test_cli_v2_json(synthetic):
    bench = synthetic / "data" / "arena-hard-v2.0"
    result = runner.invoke(app, ["score", "arena_hard", "--version", "v2.0", "--judgments", str(bench / "model_judgment" / "gpt-4.1"),
                                 "--answers", str(bench / "model_answer"), "--style-control", "length,markdown", "--category", "creative_writing", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out["models"]) == set(MODELS) and out["baseline"] == "gemini-2.0-flash-001" and out["style_control"] == "length,markdown"
    assert all(m["ci_lower"] <= m["score"] <= m["ci_upper"] for m in out["models"].values())
    table = runner.invoke(app, ["score", "arena_hard", "--version", "v2.0", "--judgments", str(bench / "model_judgment" / "gpt-4.1")])
    assert table.exit_code == 0 and "hard_prompt vs o3-mini-2025-01-31, no style control" in " ".join(table.output.split())
    missing = runner.invoke(app, ["score", "arena_hard", "--version", "v2.0", "--judgments", str(bench / "model_judgment" / "gpt-4.1"), "--style-control", "length"])
    assert missing.exit_code != 0 and "style control needs --answers" in missing.output


def test_constant_style_feature_is_left_out_with_a_note(tmp_path):
    """Tiny runs (a --limit) can have a feature with zero spread, where upstream's assert stops: we fit without it."""
    (tmp_path / "j").mkdir()
    (tmp_path / "a").mkdir()
    meta = lambda n: {"token_len": n, "header_count": {"h1": 0}, "list_count": {"ordered": 0}, "bold_count": {"**": 0}}  # noqa: E731
    rows, answers, base = [], [], []
    for k in range(6):
        uid = f"q{k}"
        rows.append({"uid": uid, "category": "hard_prompt", "model": "m", "games": [{"score": "A>B" if k % 2 else "B>A"}, {"score": "A=B"}]})
        answers.append(v2.answer_row(uid, "m", "?", "x", meta(10 + k)))
        base.append(v2.answer_row(uid, "o3-mini-2025-01-31", "?", "y", meta(20)))
    (tmp_path / "j" / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a" / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in answers))
    (tmp_path / "a" / "o3-mini-2025-01-31.jsonl").write_text("".join(json.dumps(r) + "\n" for r in base))
    out = v2.score_v2(tmp_path / "j", tmp_path / "a", "hard_prompt", ("length", "markdown"))
    assert "header, list, bold constant" in out["notes"][0] and set(out["feature_coefs"]) == {"length"}
    assert 0 <= out["models"]["m"]["score"] <= 100


# ---- the benchmark end to end, with a stubbed API judge ----

def test_eval_end_to_end_with_an_api_judge(tmp_path, monkeypatch):
    """One question per category (--limit 1), the tiny model, an OpenAI judge whose HTTP call (tested in
    test_judges) is replaced: upstream's v2.0 protocol per category, one call per game, files upstream can
    read, and per-item scores paired by uid."""
    from semibench.evals.evaluate import evaluate
    from semibench.evals.settings import EvalSettings

    requests = []

    def chat(self, body):
        requests.append(body)
        creative = body["messages"][0]["content"] == judges.ARENA_V2_CREATIVE_PROMPT
        text = "Final: [[B>A]]" if creative else "Verdict [A>B]"  # v2.0 also reads single brackets
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}

    monkeypatch.setattr(judges.OpenAIJudge, "chat", chat)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-stub")
    settings = EvalSettings(judge="openai:gpt-4.1", limit=1, engine="hf", max_new_tokens=8, dtype="float32", batch_size=4, judge_max_new_tokens=16)
    result = evaluate("tiny", ["arena_hard_v2"], settings, out_dir=tmp_path / "out")["arena_hard_v2"]
    assert len(requests) == 4 and all(b["temperature"] == 0 and b["max_tokens"] == 16 for b in requests)  # 2 questions x 2 games, no retry
    assert sorted(b["messages"][0]["content"] == judges.ARENA_SYSTEM_PROMPT for b in requests) == [False, False, True, True]
    # Each side wins one game of each question: every item scores 0.5; the scores are bootstrap means (plain) and
    # medians (style) of 100 resamples of 2 battles, so near 50, not exactly.
    metrics = result["metrics"]
    assert metrics["hard_prompt_plain"] == pytest.approx(50, abs=5) and metrics["creative_writing_plain"] == pytest.approx(50, abs=5)
    assert result["ci_lower"] <= result["score"] <= result["ci_upper"] and 40 <= result["score"] <= 60
    assert metrics["style_control"] == "length,markdown" and result["n"] == 2 and result["baseline"] == v2.BASELINES
    out = tmp_path / "out"
    rows = [json.loads(line) for line in (out / "arena_hard_v2--openai-gpt-4.1.samples.jsonl").read_text().splitlines()]
    assert sorted(r["uid"] for r in rows) == sorted(r["uid"] for r in v2.read_jsonl_rows(out / "arena_hard_v2.answers" / "tiny.jsonl"))
    assert all(r["scores"] == [0.5] for r in rows)
    judged = v2.read_jsonl_rows(out / "arena_hard_v2--openai-gpt-4.1.judgments" / "tiny.jsonl")
    assert {r["category"]: r["baseline"] for r in judged} == v2.BASELINES and all(r["games"][0]["score"] in ("A>B", "B>A") for r in judged)
    again = runner.invoke(app, ["score", "arena_hard", "--version", "v2.0", "--judgments", str(out / "arena_hard_v2--openai-gpt-4.1.judgments"),
                                "--answers", str(out / "arena_hard_v2.answers"), "--category", "creative_writing", "--json"])
    assert json.loads(again.stdout)["models"]["tiny"]["score"] == pytest.approx(metrics["creative_writing_plain"])
