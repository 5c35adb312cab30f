"""`semibench bench gpu`'s CPU dry run (the tiny shape): the script prepared for a lent GPU runs here in
the suite, as a user runs it, so it cannot rot between the times a device is lent. Its timings on a
shared CPU mean nothing; what is asserted is what the script computes and writes."""

import importlib.util
import json
import math
import subprocess
import sys

import pytest
import torch

from semibench.gpubench.workload import ModelInfo, load_shape, step_flops

SHAPE = load_shape("tiny")
BENCH = [sys.executable, "-m", "semibench", "bench", "gpu"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpubench")
    # A budget no loaded CI box reaches (the run takes ~1.5 min on 2 busy cores): every part runs; the budget has its own test below.
    done = subprocess.run(BENCH + ["--out", str(out), "--shape", "tiny", "--minutes", "120"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((out / "gpu_bench.json").read_text()), (out / "gpu_bench.md").read_text()


def tiny_params() -> tuple[int, int]:
    """(body, head) parameters of tasks/bench/tiny.config.json, by hand: per layer q and o (h x h), k and v
    (h x kv_heads x head_dim), the MLP's three h x I matrices, two norms; then the final norm. The head is
    tied to the embedding, which does no matmul."""
    h, inter, layers, kv, vocab = 64, 128, 2, 2 * 16, 512
    return layers * (2 * h * h + 2 * h * kv + 3 * h * inter + 2 * h) + h, vocab * h


def test_step_flops_counts_policy_forward_backward_and_reference_forward():
    model = ModelInfo("unused", params=13, head_params=3, body_params=10, vocab_size=1)
    # forward = 2 x (10 x 5 tokens + 3 x 2 head positions) = 112; policy 3 forwards + reference 1
    assert step_flops(model, tokens=5, head_positions=2) == 4 * 112


def test_trainer_rows_count_the_models_flops(dry_run):
    record, _ = dry_run
    body, head = tiny_params()
    assert (record["model"]["body_params"], record["model"]["head_params"]) == (body, head)
    rows = {(r["objective"], r["activation_checkpointing"]): r for r in record["trainer"]}
    assert set(rows) == {(o, ac) for o in ("grpo", "dpo") for ac in (False, True)}
    for (objective, _), row in rows.items():
        sequences = SHAPE.sequences(objective)
        # FSDP runs every row's prompt (no shared-prompt forward) and nothing is padded: lengths are exact.
        assert row["tokens_per_step"] == sequences * (SHAPE.prompt_tokens + SHAPE.completion_tokens)
        flops = 8 * (body * row["tokens_per_step"] + head * sequences * (SHAPE.completion_tokens + 1))
        assert row["model_tflop_per_step"] == pytest.approx(flops / 1e12)
        assert row["tokens_per_s"] == pytest.approx(row["tokens_per_step"] / row["step_s"]) and row["tokens_per_s"] > 0
        assert 0 < row["mfu"] and row["mfu"] == pytest.approx(row["model_tflop_per_s"] / record["ceiling"]["tflop_per_s"])
        # MFU <= 1 holds against a GPU's 8192^3 ceiling. The CPU dry run's 256^3 bf16 product is no peak: under
        # the AVX2 cap (emulated bf16) it measured slower than the tiny trainer's own kernels (MFU 1.22).
        if record["device"].startswith("cuda"):
            assert row["mfu"] <= 1
        assert row["steps"] == SHAPE.measured_steps and row["peak_memory_gib"] is None  # CPU: no allocator to ask


def test_step_zero_losses_are_the_policy_equals_reference_values(dry_run):
    """Step 0 trains the loaded weights against a reference loaded from the same file: DPO's loss is ln 2
    and GRPO's is 0 (centred advantages over completions of one length, zero KL). Checkpointing recomputes
    the same forward, so with it on the loss and the gradient norm are the same."""
    rows = {(r["objective"], r["activation_checkpointing"]): r for r in dry_run[0]["trainer"]}
    for objective, expected in (("dpo", math.log(2)), ("grpo", 0.0)):
        off, on = rows[(objective, False)], rows[(objective, True)]
        assert off["step0_loss"] == pytest.approx(expected, abs=1e-6)
        assert on["step0_loss"] == pytest.approx(off["step0_loss"], abs=1e-6)
        assert on["step0_grad_norm"] == pytest.approx(off["step0_grad_norm"], rel=1e-3) and off["step0_grad_norm"] > 0
        assert off["num_units"] == SHAPE.work[objective]["prompts"] * (1 if objective == "dpo" else SHAPE.work[objective]["samples"])


def test_against_trl_the_same_work_on_both_sides(dry_run):
    record, _ = dry_run
    rows = {(r["objective"], r["side"]): r for r in record["vs_trl"]}
    has_trl = importlib.util.find_spec("trl") is not None
    assert {side for _, side in rows} == ({"semibench", "trl"} if has_trl else {"semibench"})
    for objective in ("grpo", "dpo"):
        ours = rows[(objective, "semibench")]
        # Every completion is exactly completion_tokens long (EOS held off) on every step, both sides.
        assert ours["generated_tokens_per_step"] == [SHAPE.sequences(objective) * SHAPE.completion_tokens]
        assert ours["step_s"] == pytest.approx(ours["sync_s"] + ours["generate_s"] + ours["reward_s"] + ours["train_s"], rel=1e-6)
        assert ours["samples_per_s"] == pytest.approx(SHAPE.sequences(objective) / ours["step_s"])
        # Every step trained: one pair per prompt (DPO), every sample (GRPO); the hash reward never ties.
        assert ours["units_per_step"] == [SHAPE.work[objective]["prompts"] * (1 if objective == "dpo" else SHAPE.work[objective]["samples"])]
        if not has_trl:
            assert ours["ratio"] is None and "not installed" in record["trl"]["note"]
            continue
        trl = rows[(objective, "trl")]
        assert trl["generated_tokens_per_step"] == ours["generated_tokens_per_step"]
        assert trl["samples_per_step"] == ours["samples_per_step"] and trl["ratio"] == 1
        assert ours["ratio"] == pytest.approx(trl["step_s"] / ours["step_s"])
        assert 0 < trl["generate_s"] < trl["step_s"]  # TRL's own generate timer was caught
    if has_trl:
        assert record["trl"]["note"] is None and record["trl"]["version"]
        assert record["goals"]["vs_trl"]["value"] == min(r["ratio"] for r in record["vs_trl"] if r["side"] == "semibench")


def test_profile_names_where_a_step_goes(dry_run):
    for row in (r for r in dry_run[0]["trainer"] if not r["activation_checkpointing"]):
        profile = row["profile"]
        assert profile["what"] == "CPU operators" and 0 < profile["busy_s"]
        assert 0 < len(profile["top"]) <= 10 and sum(t["share_of_busy"] for t in profile["top"]) <= 1 + 1e-9
        assert any(t["name"] == "aten::mm" for t in profile["top"])  # a transformer step is matmuls first


def markdown_rows(markdown: str, header: str) -> list[list[str]]:
    lines = markdown.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("| " + header)))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_markdown_tables_hold_the_json_numbers(dry_run):
    record, markdown = dry_run
    trainer = markdown_rows(markdown, "objective | checkpointing")
    assert len(trainer) == len(record["trainer"])
    for cells, row in zip(trainer, record["trainer"]):
        assert cells[:2] == [row["objective"], "on" if row["activation_checkpointing"] else "off"]
        assert float(cells[5]) == pytest.approx(row["tokens_per_s"], abs=0.5)
        assert float(cells[7]) == pytest.approx(100 * row["mfu"], abs=0.005)
        assert float(cells[9]) == pytest.approx(row["step0_loss"], abs=5e-7)
    vs_trl = markdown_rows(markdown, "objective | side")
    assert [c[:2] for c in vs_trl] == [[r["objective"], r["side"]] for r in record["vs_trl"]]
    for cells, row in zip(vs_trl, record["vs_trl"]):
        assert float(cells[3]) == pytest.approx(row["step_s"], abs=5e-4)
        assert cells[5] == ("-" if row["ratio"] is None else f"{row['ratio']:.2f}")
    assert f"{record['ceiling']['tflop_per_s']:.1f} TFLOP/s" in markdown and record["machine"] in markdown


def test_a_spent_budget_skips_and_lists_the_remaining_parts(tmp_path):
    done = subprocess.run(BENCH + ["--out", str(tmp_path), "--shape", "tiny", "--minutes", "0.0001"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert record["ceiling"]["tflop_per_s"] > 0 and record["trainer"] == [] and record["vs_trl"] == []
    has_trl = importlib.util.find_spec("trl") is not None
    assert len(record["skipped"]) == 4 + 2 + has_trl  # 4 trainer parts, 2 online ones, TRL's (where it is installed)
    assert all("budget was spent" in s for s in record["skipped"])
    assert record["goals"]["mfu"]["met"] is None and "Not measured:" in (tmp_path / "gpu_bench.md").read_text()


@pytest.mark.parametrize("args,message", [
    (["--shape", "huge"], "unknown shape 'huge'"),
    (["--minutes", "0"], "--minutes must be > 0"),
    (["--steps", "0"], "--steps must be >= 1"),
    pytest.param(["--shape", "1b"], "needs a CUDA GPU", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU runs 1b")),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    done = subprocess.run(BENCH + ["--out", str(tmp_path), *args], capture_output=True, text=True)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written
