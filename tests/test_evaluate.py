"""`semibench eval` on the tiny model: where results go, held-out math, resume after a kill, idempotency, bad input."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from semibench import constraints
from semibench import config
from semibench.cli import app
from semibench.engines.hf import HFGenerator
from semibench.evals import data as benchmarks
from semibench.evals import math as math_eval
from semibench.evals.evaluate import evaluate
from semibench.evals.scoring.samples import avg_at_n
from semibench.evals.settings import EvalSettings, eval_dir, result_stem, settings_to_cli
from semibench.models import resolve_model
from semibench.runs import RunDir, mark_done
from semibench.tasks import _procedural_math

runner = CliRunner()
FAST = dict(engine="hf", max_new_tokens=8, dtype="float32", batch_size=4)


@pytest.fixture(autouse=True)
def _hf_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture
def run_checkpoint(tmp_path):
    """runs/<id>/checkpoints/step_000003: the tiny model under a tiny-preset run's config.json."""
    cfg = config.resolve("tiny", {})
    run = RunDir(tmp_path / "runs", cfg)
    run.start_fresh(cfg)
    checkpoint = run.checkpoint(3)
    shutil.copytree(resolve_model("tiny"), checkpoint)
    mark_done(checkpoint)
    return cfg, checkpoint


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_output_locations(tmp_path, run_checkpoint):
    _, checkpoint = run_checkpoint
    assert eval_dir(checkpoint) == checkpoint.parent.parent / "eval" / "step_000003"
    assert eval_dir(tmp_path / "any" / "model") == tmp_path / "any" / "model" / "eval"
    assert result_stem("gsm8k", "local:smollm2") == "gsm8k"
    assert result_stem("alpaca_eval", "local:smollm2") == "alpaca_eval--local-smollm2"
    a, b = result_stem("arena_hard", "local:/x/run1/step_000100"), result_stem("arena_hard", "local:/x/run2/step_000100")
    assert a != b and a.startswith("arena_hard--local-step_000100-")


def test_heldout_math_of_a_run_avoids_its_training_pool(run_checkpoint):
    cfg, checkpoint = run_checkpoint
    result = evaluate(checkpoint, ["math_heldout"], EvalSettings(heldout_size=10, **FAST))["math_heldout"]
    out = eval_dir(checkpoint)
    assert (out / "math_heldout.json").is_file()
    rows = _rows(out / "math_heldout.samples.jsonl")
    pool = {q for q, _, _ in _procedural_math(cfg.task, cfg.task.data_seed)}
    questions = [r["question"] for r in rows]
    assert len(questions) == len(set(questions)) == result["n"] == 10
    assert not set(questions) & pool
    assert all(r["prompt"].endswith("<|im_start|>assistant\n") and f"{r['question']} The answer is" in r["prompt"] for r in rows)  # the run's "tiny" template
    assert result["template"] == "tiny" and "config.json" in result["data"]
    # The score is avg@1 of the per-sample Math-Verify scores in the samples file.
    score, stderr = avg_at_n([r["scores"] for r in rows])
    assert result["score"] == pytest.approx(score) and result["stderr"] == pytest.approx(stderr)
    for key in ("benchmark", "score", "stderr", "ci_lower", "ci_upper", "metrics", "n", "samples_per_prompt", "sampling", "judge",
                "checkpoint", "engine", "limit", "versions", "seconds", "date"):
        assert key in result, key


def test_heldout_sources_that_run_dry_say_so():
    task = config.resolve("tiny", {}).task  # single-digit sums: 121 distinct questions, most in a 200-prompt pool
    spec = math_eval.HeldoutSpec(task, 0, True, "test")
    items, notes = math_eval.heldout_items(spec, 500)
    assert 0 < len(items) < 121 and notes and "only" in notes[0]


def test_avg_at_n_with_samples(tmp_path):
    settings = EvalSettings(samples_per_prompt=3, temperature=1.0, heldout_size=6, heldout_sources=("single_digit",), heldout_template="tiny", **FAST)
    result = evaluate("tiny", ["math_heldout"], settings, out_dir=tmp_path / "out")["math_heldout"]
    rows = _rows(tmp_path / "out" / "math_heldout.samples.jsonl")
    assert all(len(r["completions"]) == len(r["scores"]) == 3 for r in rows)
    seeds = [sum(r["scores"][j] for r in rows) / len(rows) for j in range(3)]
    mean = sum(seeds) / 3
    assert result["score"] == pytest.approx(100 * mean)
    assert result["stderr"] == pytest.approx(100 * (sum((s - mean) ** 2 for s in seeds) / 2 / 3) ** 0.5)
    assert result["samples_per_prompt"] == 3 and result["sampling"]["temperature"] == 1.0


def test_killed_eval_resumes_without_regenerating(tmp_path, monkeypatch):
    settings = EvalSettings(heldout_size=12, heldout_sources=("single_digit",), heldout_template="tiny", **FAST)
    real_generate = HFGenerator.generate
    calls = []

    def dies_after_one_batch(self, prompts, n, sampling):
        if calls:
            raise KeyboardInterrupt  # the kill
        calls.append(len(prompts))
        return real_generate(self, prompts, n, sampling)

    monkeypatch.setattr(HFGenerator, "generate", dies_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        evaluate("tiny", ["math_heldout"], settings, out_dir=tmp_path / "out")
    samples = tmp_path / "out" / "math_heldout.samples.jsonl"
    assert len(_rows(samples)) == 4 and not (tmp_path / "out" / "math_heldout.json").exists()
    with open(samples, "a") as f:
        f.write('{"key": "cut sh')  # a line the kill cut short

    generated = []

    def counting(self, prompts, n, sampling):
        generated.append(len(prompts))
        return real_generate(self, prompts, n, sampling)

    monkeypatch.setattr(HFGenerator, "generate", counting)
    resumed = evaluate("tiny", ["math_heldout"], settings, out_dir=tmp_path / "out")["math_heldout"]
    assert sum(generated) == 8  # only the prompts the kill left
    fresh = evaluate("tiny", ["math_heldout"], settings, out_dir=tmp_path / "fresh")["math_heldout"]
    assert [r["completions"] for r in _rows(samples)] == [r["completions"] for r in _rows(tmp_path / "fresh" / "math_heldout.samples.jsonl")]
    assert resumed["score"] == fresh["score"]

    # Same settings again: the result on disk is returned, nothing is generated.
    monkeypatch.setattr(HFGenerator, "generate", lambda *a: pytest.fail("regenerated a finished benchmark"))
    assert evaluate("tiny", ["math_heldout"], settings, out_dir=tmp_path / "out")["math_heldout"] == resumed
    # Other sampling settings: the old samples are stale and everything is generated again.
    generated.clear()
    monkeypatch.setattr(HFGenerator, "generate", counting)
    evaluate("tiny", ["math_heldout"], EvalSettings(**{**settings.__dict__, "max_new_tokens": 6}), out_dir=tmp_path / "out")
    assert sum(generated) == 12
    assert all(r["settings_id"] == _rows(samples)[0]["settings_id"] for r in _rows(samples))


def test_missing_data_one_line_and_others_still_run(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks, "SHIPPED_DATA_DIR", tmp_path / "nowhere")  # no local data but the empty --data-dir
    empty = tmp_path / "data"
    empty.mkdir()
    only_missing = runner.invoke(app, ["eval", "tiny", "--benchmarks", "gsm8k", "--data-dir", str(empty), "--out-dir", str(tmp_path / "a")])
    lines = [line for line in only_missing.output.splitlines() if line.strip()]
    assert only_missing.exit_code == 2 and len(lines) == 1
    assert lines[0].startswith("error: gsm8k: no data; pass") and f"{empty}/gsm8k/test.jsonl" in lines[0]
    assert not (tmp_path / "a").exists()

    args = ["eval", "tiny", "--benchmarks", "gsm8k,math_heldout", "--data-dir", str(empty), "--out-dir", str(tmp_path / "b"),
            "--heldout-size", "2", "--max-new-tokens", "4", "--dtype", "float32", "--engine", "hf"]
    some = runner.invoke(app, args)
    assert some.exit_code == 0, some.output
    assert "skipped: gsm8k: no data" in some.output
    assert (tmp_path / "b" / "math_heldout.json").is_file() and not (tmp_path / "b" / "gsm8k.json").exists()


def test_judged_benchmark_without_judge_is_skipped_with_the_fix(tmp_path):
    result = runner.invoke(app, ["eval", "tiny", "--benchmarks", "alpaca_eval", "--out-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--judge openai:<model>" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--benchmarks", "gsm8kk"], "unknown benchmark(s) gsm8kk"),
    (["--samples", "4"], "greedy decoding (temperature 0) gives one sample"),
    (["--judge", "gpt4"], "judge 'gpt4' is not <kind>:<model>"),
    (["--engine", "tpu"], "engine must be one of"),
])
def test_bad_settings_one_line_exit_2(tmp_path, args, message):
    result = runner.invoke(app, ["eval", "tiny", "--out-dir", str(tmp_path / "x"), *args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "x").exists()


def test_missing_checkpoint_one_line(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no checkpoint at" in result.output


def test_settings_to_cli_round_trips(tmp_path, monkeypatch):
    from semibench.evals import evaluate as ev

    settings = EvalSettings(samples_per_prompt=4, temperature=0.6, top_p=0.9, max_new_tokens=64, limit=7, judge="local:tiny", data_dir=tmp_path,
                            engine="hf", seed=3, batch_size=8, dtype="float32", judge_max_new_tokens=99, heldout_size=5,
                            heldout_sources=("single_digit", "easy_arithmetic"), heldout_template="tiny", reward_model="rm/x", rm_cls_token="<c>",
                            chat_template="llama3")
    seen = {}
    monkeypatch.setattr(ev, "evaluate", lambda checkpoint, benches, s, out_dir, progress, origin: seen.setdefault("s", s) and {})
    result = runner.invoke(app, ["eval", "tiny", "--benchmarks", "math_heldout", *settings_to_cli(settings)])
    assert result.exit_code == 0, result.output
    assert seen["s"] == settings
    assert EvalSettings(limit="7", temperature="0.6", heldout_sources=["a"]) == EvalSettings(limit=7, temperature=0.6, heldout_sources=("a",))


def test_heldout_math_of_a_grid_seed_row_follows_the_origin_it_is_given(tmp_path):
    """`semibench grid` evaluates the base model with the grid's training source as its origin (<row>/seed.json on
    disk, `--origin` in a Slurm job): nothing is picked up from the output directory's neighbours."""
    cfg = config.resolve("tiny", {})
    row = tmp_path / "seed-tiny"
    row.mkdir()
    (row / "seed.json").write_text(json.dumps({"model": "tiny", "task": config.to_dict(cfg)["task"], "seed": cfg.train.seed}))
    unnamed = evaluate("tiny", ["math_heldout"], EvalSettings(heldout_size=5, **FAST), out_dir=row / "plain")["math_heldout"]
    assert "seed.json" not in unnamed["data"]  # no side channel: the seed.json beside it is not read
    result = evaluate("tiny", ["math_heldout"], EvalSettings(heldout_size=5, **FAST), out_dir=row / "eval",
                      origin=benchmarks.read_origin(row / "seed.json"))["math_heldout"]
    rows = _rows(row / "eval" / "math_heldout.samples.jsonl")
    pool = {q for q, _, _ in _procedural_math(cfg.task, cfg.task.data_seed)}
    assert result["template"] == "tiny" and "seed.json" in result["data"]
    assert len(rows) == 5 and not {r["question"] for r in rows} & pool


def test_punkt_tab_is_built_offline_without_a_download(tmp_path, monkeypatch):
    import sys

    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nowhere")])
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(nltk, "download", lambda *a, **k: pytest.fail("tried to download NLTK data"))
    found = constraints.ensure_punkt_tab()
    assert found == tmp_path / "venv" / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
    assert sorted(p.name for p in found.iterdir()) == ["abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt"]
    from nltk.tokenize.punkt import PunktTokenizer

    text = "Mr. Smith went to Washington. He arrived at 3 p.m. on Jan. 5. Dr. Who? Yes!"
    assert len(PunktTokenizer("english").tokenize(text)) == 4
    assert constraints.ensure_punkt_tab() == found  # second call: found, nothing rebuilt


def test_results_carry_the_standard_error_over_items_and_the_spread_over_seeds(tmp_path):
    """se_items / ci_items / sd_seeds come from the per-item scores the samples file holds (stats.item_summary)."""
    from semibench.stats import item_summary

    settings = EvalSettings(heldout_size=6, samples_per_prompt=2, temperature=1.0, **FAST)
    result = evaluate("tiny", ["math_heldout"], settings, out_dir=tmp_path)["math_heldout"]
    summary = item_summary([r["scores"] for r in _rows(tmp_path / "math_heldout.samples.jsonl")])
    assert result["score"] == pytest.approx(summary["score"])
    assert (result["se_items"], result["ci_items"], result["sd_seeds"]) == (summary["se_items"], summary["ci_items"], summary["sd_seeds"])
    assert result["sd_seeds"] is not None


def test_no_standard_error_over_items_where_the_score_is_not_their_mean(tmp_path):
    from semibench.evals.evaluate import item_uncertainty

    samples = tmp_path / "x.samples.jsonl"
    samples.write_text("".join(json.dumps({"key": str(i), "scores": [s]}) + "\n" for i, s in enumerate([1, 0, 1, 1])))
    assert item_uncertainty(samples, 75.0)["se_items"] == pytest.approx(25.0)
    assert item_uncertainty(samples, 61.3) == {"se_items": None, "ci_items": None, "sd_seeds": None}  # e.g. a Bradley-Terry score


def test_if_heldout_takes_its_own_size_and_math_keeps_the_shared_one(tmp_path):
    """--if-heldout-size sizes if_heldout alone (its pass/fail items near 50% need more of them than math's);
    unset, both benchmarks take --heldout-size. The size is in the result's record, so a resized set is rescored."""
    settings = EvalSettings(heldout_size=3, if_heldout_size=5, heldout_sources=("single_digit",), heldout_template="tiny", **FAST)
    results = evaluate("tiny", ["math_heldout", "if_heldout"], settings, out_dir=tmp_path / "sized")
    assert len(_rows(tmp_path / "sized" / "math_heldout.samples.jsonl")) == 3
    assert len(_rows(tmp_path / "sized" / "if_heldout.samples.jsonl")) == 5
    assert results["if_heldout"]["settings"]["heldout_size"] == 5
    shared = evaluate("tiny", ["if_heldout"], EvalSettings(heldout_size=3, **FAST), out_dir=tmp_path / "shared")
    assert len(_rows(tmp_path / "shared" / "if_heldout.samples.jsonl")) == 3
    assert shared["if_heldout"]["settings"]["heldout_size"] == 3
    from semibench.evals.settings import check_settings

    with pytest.raises(config.ConfigError, match="held-out sizes must be >= 1"):  # 0 is no size, not "the default"
        check_settings(EvalSettings(if_heldout_size=0))
