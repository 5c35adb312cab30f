"""The paper's held-out sets as benchmarks on the tests/assets fixtures: NuminaMath test/valid (Math-Verify,
avg@N) and WildChat valid (a tiny Athene-style reward model, length-normalised reward)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from semibench import config, paper_data
from semibench.cli import app
from semibench.datafiles import read_spec
from semibench.engines.hf import HFGenerator
from semibench.evals import data as benchmarks
from semibench.evals.evaluate import evaluate
from semibench.evals.scoring.samples import avg_at_n
from semibench.evals.session import Session, prompt_key
from semibench.evals.settings import EvalSettings
from semibench.evals.wildchat import ratio_stderr
from semibench.models import resolve_model
from semibench.rewards import length_normalized_reward
from semibench.rewards.reward_model import ScalarRewardModel
from semibench.runs import RunDir, mark_done
from tests.test_athene import CLS, athene  # noqa: F401 (a fixture: the tiny Athene-style reward model)
from tests.test_paper_data import NUMINA, NUMINA_KEPT, WILDCHAT, WILDCHAT_KEPT

FAST = dict(engine="hf", max_new_tokens=8, dtype="float32", batch_size=4)
runner = CliRunner()


def by_rank(texts):
    """The split order, recomputed by hand: sha256(seed 0, whitespace-normalised text)."""
    return sorted(texts, key=lambda t: paper_data.rank_key(0, " ".join(t.split())))


@pytest.fixture(autouse=True)
def _small_held_out(tmp_path, monkeypatch):
    """Hold out 2 NuminaMath problems per split and 3 WildChat prompts (the fixtures have 7 of each), hub offline."""
    monkeypatch.setattr(paper_data, "NUMINA_HELD_OUT", 2)
    monkeypatch.setattr(paper_data, "WILDCHAT_VALID", 3)
    monkeypatch.setattr(paper_data, "WILDCHAT_TRAIN", 4)
    monkeypatch.setattr(benchmarks, "SHIPPED_DATA_DIR", tmp_path / "no-shipped-data")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture
def data_dir(tmp_path):
    """--data-dir with the hub datasets' train splits as local files."""
    root = tmp_path / "data"
    for name, fixture in (("numina", NUMINA), ("wildchat", WILDCHAT)):
        (root / name).mkdir(parents=True)
        shutil.copy(fixture, root / name / "train.jsonl")
    return root


def run_checkpoint(root: Path, overrides: dict, steps: tuple[int, ...] = (3,)) -> Path:
    """runs/<id>/checkpoints/step_N for each step (the last returned): the tiny model under a tiny-preset run's config.json."""
    cfg = config.resolve("tiny", overrides)
    run = RunDir(root, cfg)
    run.start_fresh(cfg)
    for step in steps:
        checkpoint = run.checkpoint(step)
        shutil.copytree(resolve_model("tiny"), checkpoint)
        mark_done(checkpoint)
    return checkpoint


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def paper_prompt(session: Session, problem: str) -> str:
    return session.chat(read_spec("templates")["math"]["paper"].format(problem=problem))


def boxed(answer: str) -> str:
    return f"Reasoning. The final answer is $\\boxed{{{answer}}}$. I hope it is correct."


def prefill_numina(checkpoint, settings: EvalSettings, out: Path, bench: str, answers: dict[str, list[str]]) -> None:
    """Write hand-made completions where a killed eval leaves its finished samples: evaluate scores them, generating nothing."""
    session = Session(Path(checkpoint), settings, out, None)
    n = settings.samples_per_prompt
    session.store(bench).append([{"key": prompt_key(paper_prompt(session, q)), "prompt": paper_prompt(session, q), "completions": cs,
                                  "num_tokens": [9] * n, "finished": [True] * n} for q, cs in answers.items()])
    session.close()


# --- NuminaMath test / valid ------------------------------------------------------------------

def test_numina_test_is_the_held_out_test_split_scored_avg_at_n(tmp_path, data_dir, monkeypatch):
    """Hand-written completions stand in the samples file (the resume path): Math-Verify and avg@N are real."""
    settings = EvalSettings(samples_per_prompt=2, temperature=1.0, data_dir=data_dir, **FAST)
    out = tmp_path / "out"
    test_split = by_rank(NUMINA_KEPT)[:2]  # test first, then valid, then train
    prefill_numina(resolve_model("tiny"), settings, out, "numina_test", {
        test_split[0]: [boxed(NUMINA_KEPT[test_split[0]]), boxed("123")],  # right, wrong
        test_split[1]: [boxed(NUMINA_KEPT[test_split[1]])] * 2,  # right, right
    })
    monkeypatch.setattr(HFGenerator, "generate", lambda *a: pytest.fail("generated although every sample was on disk"))

    result = evaluate("tiny", ["numina_test"], settings, out_dir=out)["numina_test"]
    # Seed 0 solves both, seed 1 one of two: mean of (100, 50) = 75, stderr std(ddof=1) / sqrt(2) = 25.
    assert result["score"] == pytest.approx(75.0) and result["stderr"] == pytest.approx(25.0)
    assert result["n"] == 2 and result["metrics"]["pass_at_2"] == pytest.approx(100.0)
    assert result["template"] == "paper" and str(data_dir / "numina" / "train.jsonl") in result["data"] and "test split" in result["data"]
    stored = {r["question"]: r for r in rows(out / "numina_test.samples.jsonl")}
    assert set(stored) == set(test_split)
    assert stored[test_split[0]]["gold"] == NUMINA_KEPT[test_split[0]] and stored[test_split[0]]["scores"] == [1.0, 0.0]


def test_math500_as_the_paper_scored_it(tmp_path, monkeypatch):
    """math500_paper: the shipped MATH-500, the paper's math prompt, Math-Verify per sample (lm-eval's Minerva
    variant is `math500`). Hand-written completions stand in the samples file; the scoring is real."""
    shipped = Path(__file__).resolve().parents[1] / "tasks" / "data"  # this module's fixture hides it from the default lookup
    rows_500 = [json.loads(line) for line in (shipped / "math500" / "test.jsonl").read_text().splitlines()[:2]]
    settings = EvalSettings(samples_per_prompt=2, temperature=1.0, limit=2, data_dir=shipped, **FAST)
    out = tmp_path / "out"
    prefill_numina(resolve_model("tiny"), settings, out, "math500_paper", {
        rows_500[0]["problem"]: [boxed(rows_500[0]["answer"]), boxed("123")],  # right, wrong
        rows_500[1]["problem"]: [boxed(rows_500[1]["answer"])] * 2,  # right, right
    })
    monkeypatch.setattr(HFGenerator, "generate", lambda *a: pytest.fail("generated although every sample was on disk"))
    result = evaluate("tiny", ["math500_paper"], settings, out_dir=out)["math500_paper"]
    assert result["benchmark"] == "math500_paper" and result["template"] == "paper" and result["primary_metric"] == "math_verify"
    assert result["score"] == pytest.approx(75.0) and result["n"] == 2 and "math500/test.jsonl" in result["data"]
    stored = {r["question"]: r for r in rows(out / "math500_paper.samples.jsonl")}
    assert stored[rows_500[0]["problem"]]["scores"] == [1.0, 0.0] and "Given the following problem" in stored[rows_500[0]["problem"]]["prompt"]


def test_numina_valid_of_a_run_uses_the_file_it_trained_on(tmp_path):
    """task.math_data=numina:<file> in the run's config.json: no --data-dir needed; real generation by the tiny model."""
    checkpoint = run_checkpoint(tmp_path / "runs", {"task.math_data": f"numina:{NUMINA}"})
    result = evaluate(checkpoint, ["numina_valid"], EvalSettings(**FAST))["numina_valid"]
    out = checkpoint.parent.parent / "eval" / checkpoint.name
    stored = rows(out / "numina_valid.samples.jsonl")
    assert {r["question"] for r in stored} == set(by_rank(NUMINA_KEPT)[2:4])
    assert all(r["gold"] == NUMINA_KEPT[r["question"]] and "Given the following problem" in r["prompt"] for r in stored)
    assert result["score"] == pytest.approx(avg_at_n([r["scores"] for r in stored])[0])
    assert f"{NUMINA} (task.math_data of" in result["data"] and "valid split" in result["data"]


def test_numina_missing_or_too_small_is_one_line_and_the_rest_runs(tmp_path, data_dir, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    only = runner.invoke(app, ["eval", "tiny", "--benchmarks", "numina_test", "--data-dir", str(empty), "--out-dir", str(tmp_path / "a")])
    lines = [line for line in only.output.splitlines() if line.strip()]
    assert only.exit_code == 2 and len(lines) == 1, only.output
    assert lines[0].startswith("error: numina_test: no data; pass") and f"{empty}/numina/train.jsonl" in lines[0]

    common = ["--heldout-size", "2", "--max-new-tokens", "4", "--dtype", "float32", "--engine", "hf"]
    some = runner.invoke(app, ["eval", "tiny", "--benchmarks", "numina_valid,math_heldout", "--data-dir", str(empty),
                               "--out-dir", str(tmp_path / "b"), *common])
    assert some.exit_code == 0 and "skipped: numina_valid: no data" in some.output, some.output
    assert (tmp_path / "b" / "math_heldout.json").is_file() and not (tmp_path / "b" / "numina_valid.json").exists()

    # The paper's 2 x 1,980 held-out problems from a 17-row file: found only when read; still one line, the rest runs.
    monkeypatch.setattr(paper_data, "NUMINA_HELD_OUT", 1980)
    small = runner.invoke(app, ["eval", "tiny", "--benchmarks", "numina_test,math_heldout", "--data-dir", str(data_dir),
                                "--out-dir", str(tmp_path / "c"), *common])
    assert small.exit_code == 0, small.output
    assert "skipped: numina_test: NuminaMath filter kept 7 problems, too few to hold out 2 x 1980" in small.output
    assert (tmp_path / "c" / "math_heldout.json").is_file() and not (tmp_path / "c" / "numina_test.json").exists()


# --- WildChat valid ---------------------------------------------------------------------------

def test_wildchat_valid_is_length_normalised_reward_of_the_runs_reward_model(tmp_path, data_dir, athene, monkeypatch):
    """The run's config names the RM; hand-written completions and lengths stand in the samples file; the RM is real."""
    checkpoint = run_checkpoint(tmp_path / "runs", {"reward.reward_model": str(athene), "reward.rm_cls_token": CLS, "reward.rm_device": "cpu"})
    settings = EvalSettings(samples_per_prompt=2, temperature=1.0, data_dir=data_dir, **FAST)
    out = checkpoint.parent.parent / "eval" / checkpoint.name
    valid = by_rank(WILDCHAT_KEPT)[:3]  # validation first, whatever the training size
    session = Session(checkpoint, settings, out, None)
    answers = {u: [f"Answer {k} to: {u}", "ok"] for k, u in enumerate(valid)}
    lengths = {valid[0]: [10, 20], valid[1]: [30, 40], valid[2]: [50, 60]}
    store = session.store("wildchat_valid")
    store.append([{"key": prompt_key(session.chat(u)), "prompt": session.chat(u), "completions": answers[u], "num_tokens": lengths[u],
                   "finished": [True, True]} for u in valid])
    session.close()
    monkeypatch.setattr(HFGenerator, "generate", lambda *a: pytest.fail("generated although every sample was on disk"))

    result = evaluate(checkpoint, ["wildchat_valid"], settings)["wildchat_valid"]
    rm = ScalarRewardModel(str(athene), cls_token=CLS, dtype=torch.float32, device="cpu")
    r = {u: rm([u, u], answers[u]) for u in valid}  # the user turn is the raw prompt (the `plain` template)
    seed0 = sum(r[u][0] for u in valid) / 3 / 30  # mean reward / mean length (10, 30, 50)
    seed1 = sum(r[u][1] for u in valid) / 3 / 40  # (20, 40, 60)
    assert result["score"] == pytest.approx((seed0 + seed1) / 2, abs=1e-6)
    assert result["stderr"] == pytest.approx(abs(seed0 - seed1) / 2, abs=1e-6)  # std(ddof=1) / sqrt(2) of two seeds
    assert result["metrics"]["reward_len_norm"] == result["score"] and result["primary_metric"] == "reward_len_norm"
    assert result["metrics"]["mean_reward"] == pytest.approx(sum(sum(v) for v in r.values()) / 6, abs=1e-6)
    assert result["metrics"]["mean_tokens"] == 35 and result["n"] == 3
    assert result["reward_model"]["name"] == str(athene) and result["reward_model"]["from"].endswith("config.json")
    assert result["settings"]["reward_model"] == str(athene) and result["settings"]["rm_cls_token"] == CLS
    stored = {row["instruction"]: row for row in rows(out / "wildchat_valid.samples.jsonl")}
    assert stored[valid[1]]["rewards"] == pytest.approx(r[valid[1]], abs=1e-6) and stored[valid[1]]["num_tokens"] == [30, 40]


def test_wildchat_valid_with_a_reward_model_setting_generates_and_scores(tmp_path, data_dir, athene):
    """Any checkpoint with --reward-model; real generation (greedy, one sample), lengths from the generator."""
    settings = EvalSettings(data_dir=data_dir, reward_model=str(athene), rm_cls_token=CLS, **FAST)
    result = evaluate("tiny", ["wildchat_valid"], settings, out_dir=tmp_path / "out")["wildchat_valid"]
    stored = rows(tmp_path / "out" / "wildchat_valid.samples.jsonl")
    assert [row["instruction"] for row in stored] and {row["instruction"] for row in stored} == set(by_rank(WILDCHAT_KEPT)[:3])
    rm = ScalarRewardModel(str(athene), cls_token=CLS, dtype=torch.float32, device="cpu")
    rewards = rm([row["instruction"] for row in stored], [row["completions"][0] for row in stored])
    lengths = [row["num_tokens"][0] for row in stored]
    assert all(1 <= n <= 8 for n in lengths)  # the generator's token counts, at most max_new_tokens
    assert result["score"] == pytest.approx(length_normalized_reward(rewards, lengths), abs=1e-6)
    assert result["stderr"] == pytest.approx(ratio_stderr(rewards, lengths), abs=1e-6)
    assert result["reward_model"]["from"] == "--reward-model"


def test_ratio_stderr_by_hand():
    # R = 2, L = 40/3, q = 0.15; residuals r - q l = (-0.5, 0.5, 0): SE = sqrt(0.5 / (3 * 2)) / (40/3).
    assert ratio_stderr([1.0, 2.0, 3.0], [10, 10, 20]) == pytest.approx((0.5 / 6) ** 0.5 * 3 / 40)
    assert ratio_stderr([1.0], [5]) is None


def test_wildchat_valid_without_a_reward_model_is_one_line_and_the_rest_runs(tmp_path, data_dir):
    common = ["--heldout-size", "2", "--max-new-tokens", "4", "--dtype", "float32", "--engine", "hf", "--data-dir", str(data_dir)]
    none = runner.invoke(app, ["eval", "tiny", "--benchmarks", "wildchat_valid,math_heldout", "--out-dir", str(tmp_path / "a"), *common])
    assert none.exit_code == 0 and "skipped: wildchat_valid: needs a reward model; pass --reward-model" in none.output, none.output
    assert (tmp_path / "a" / "math_heldout.json").is_file() and not (tmp_path / "a" / "wildchat_valid.json").exists()
    gone = runner.invoke(app, ["eval", "tiny", "--benchmarks", "wildchat_valid", "--reward-model", str(tmp_path / "no-rm"),
                               "--out-dir", str(tmp_path / "b"), *common])
    lines = [line for line in gone.output.splitlines() if line.strip()]
    assert gone.exit_code == 2 and len(lines) == 1 and f"reward model {tmp_path / 'no-rm'} (from --reward-model) is neither" in lines[0]


# --- Checkpoint selection ---------------------------------------------------------------------

def test_select_picks_the_checkpoint_with_the_best_validation_score(tmp_path, data_dir, monkeypatch):
    """Three checkpoints of one run, evaluated for real on numina_valid (hand-made answers: 1, 2 and 2 of 2 right)."""
    last = run_checkpoint(tmp_path / "runs", {}, steps=(100, 200, 300))
    run = last.parent.parent
    settings = EvalSettings(data_dir=data_dir, **FAST)
    valid = by_rank(NUMINA_KEPT)[2:4]
    monkeypatch.setattr(HFGenerator, "generate", lambda *a: pytest.fail("generated although every sample was on disk"))
    for step, right in ((100, 1), (200, 2), (300, 2)):
        answers = {q: [boxed(NUMINA_KEPT[q] if k < right else "999")] for k, q in enumerate(valid)}
        checkpoint = run / "checkpoints" / f"step_{step:06d}"
        prefill_numina(checkpoint, settings, run / "eval" / checkpoint.name, "numina_valid", answers)
        assert evaluate(checkpoint, ["numina_valid"], settings)["numina_valid"]["score"] == pytest.approx(50.0 * right)

    result = runner.invoke(app, ["select", str(run), "--by", "numina_valid", "--json"])
    assert result.exit_code == 0, result.output
    chosen = json.loads(result.output)
    assert chosen["best_step"] == 200 and chosen["score"] == pytest.approx(100.0)  # a tie with 300: the earlier one
    assert chosen["checkpoint"] == str(run / "checkpoints" / "step_000200")
    assert chosen["scores"] == {"100": pytest.approx(50.0), "200": pytest.approx(100.0), "300": pytest.approx(100.0)}
    table = runner.invoke(app, ["select", str(run), "--by", "numina_valid"])
    assert table.exit_code == 0 and f"best: {run / 'checkpoints' / 'step_000200'}" in table.output

    # One checkpoint scored under other settings: not comparable, one line naming what differs.
    path = run / "eval" / "step_000300" / "numina_valid.json"
    changed = json.loads(path.read_text())
    changed["settings"]["temperature"] = 0.6
    path.write_text(json.dumps(changed))
    differs = runner.invoke(app, ["select", str(run), "--by", "numina_valid"])
    assert differs.exit_code == 2 and "evaluated on numina_valid with different temperature" in differs.output
    missing = runner.invoke(app, ["select", str(run), "--by", "wildchat_valid"])
    assert missing.exit_code == 2 and "no checkpoint of" in missing.output and "--benchmarks wildchat_valid" in missing.output


def test_table1_has_the_papers_numinamath_column_and_the_paper_grid_evaluates_it(tmp_path):
    from semibench.grid import GRID_DEFAULTS
    from semibench.reports.tables import write_tables
    from tests.report_fixtures import eval_json, make_run, make_seed

    assert GRID_DEFAULTS["paper"].benchmarks[:3] == ("math500_paper", "numina_test", "amc23")  # Table 1, in its order
    make_seed(tmp_path, "tiny", [eval_json("math500_paper", 40.0, 1.0), eval_json("numina_test", 30.0, 0.5), eval_json("amc23", 20.0, 2.0)])
    make_run(tmp_path, "math", "dpo", "1", evals={4: [eval_json("math500_paper", 45.0, 1.0), eval_json("numina_test", 36.25, 0.75),
                                                      eval_json("amc23", 25.0, 2.5), eval_json("math_heldout", 60.0, 3.0)]})
    write_tables(tmp_path, tmp_path / "tables")
    md = (tmp_path / "tables" / "table1.md").read_text()
    assert "| Method | Updates | Math500 (paper) | NuminaMath | Held-out math | AMC23 |" in md
    assert "| Online DPO (s=1) | 3/4 | 45.0 (1.0) | 36.2 (0.8) | 60.0 (3.0) | 25.0 (2.5) |" in md  # fixture step 1 took no update


# --- The grid's seed row ----------------------------------------------------------------------

def test_seed_row_is_prompted_like_the_trained_checkpoints(tmp_path):
    """--preset paper trains with model.chat_template=llama3 (saved in every checkpoint's tokenizer); the seed row,
    the hub model with its own template, must get the same prompts, here on the tiny model (ChatML of its own)."""
    from semibench.grid import evaluate_seed, seed_dir
    from semibench.training.train import train

    cfg = config.resolve("tiny", {"model.chat_template": "llama3", "train.steps": 1})
    run = train(cfg, tmp_path / "runs")
    settings = EvalSettings(heldout_size=4, **FAST)
    evaluate(run / "checkpoints" / "step_000001", ["math_heldout"], settings)
    results = evaluate_seed(cfg, tmp_path / "runs", ["math_heldout"], settings)
    row = seed_dir(tmp_path / "runs", cfg.model.name)
    assert results["math_heldout"]["n"] == 4  # evaluate_seed hands back its results (the grid's wall split reads them)

    trained = [r["prompt"] for r in rows(run / "eval" / "step_000001" / "math_heldout.samples.jsonl")]
    seed = [r["prompt"] for r in rows(row / "eval" / "math_heldout.samples.jsonl")]
    assert len(trained) == 4 and seed == trained
    assert all(p.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n") for p in seed)
    assert json.loads((row / "seed.json").read_text())["chat_template"] == "llama3"
    assert json.loads((row / "eval" / "math_heldout.json").read_text())["settings"]["chat_template"] == "llama3"
    # Without it the seed row would be prompted in the tiny tokenizer's own ChatML: what this test guards against.
    plain = evaluate("tiny", ["math_heldout"], settings, out_dir=row / "plain")["math_heldout"]
    assert plain["n"] == 4 and all(r["prompt"].endswith("<|im_start|>assistant\n") for r in rows(row / "plain" / "math_heldout.samples.jsonl"))


def test_slurm_seed_job_carries_the_chat_template(tmp_path):
    import shlex

    from semibench.slurm import seed_job_command

    cfg = config.resolve("paper", {"task.name": "math"})
    command = seed_job_command(cfg, tmp_path, ["numina_test"], EvalSettings(samples_per_prompt=50, temperature=0.6))
    words = shlex.split(command)
    assert words[words.index("--chat-template") + 1] == "llama3"
    seed_json = json.loads(words[words.index("printf") + 2])
    assert seed_json["chat_template"] == "llama3" and seed_json["reward"]["reward_model"] == "Nexusflow/Athene-RM-8B"
