"""The run-directory contract's writers: atomic, readable by others, nothing half-written left behind."""

import os

from semibench.runs import atomic_dir, atomic_write_text, is_done


def test_atomic_write_text_follows_umask_and_leaves_no_temp(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a" / "result.json", "{}")
    finally:
        os.umask(old)
    assert oct((tmp_path / "a" / "result.json").stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["result.json"]


def test_atomic_dir_is_done_only_after_the_block(tmp_path):
    target = tmp_path / "step_000001"
    try:
        with atomic_dir(target) as tmp:
            (tmp / "weights").write_text("x")
            raise KeyboardInterrupt  # a kill mid-write
    except KeyboardInterrupt:
        pass
    assert not target.exists() and not is_done(target)
    with atomic_dir(target) as tmp:  # the next writer clears the leftover and finishes
        (tmp / "weights").write_text("y")
    assert is_done(target) and (target / "weights").read_text() == "y"
    assert not target.with_name("step_000001.tmp").exists()


def test_a_key_added_later_keeps_every_earlier_run_id():
    """P6x8's offline run of data seed 0 (the Zen 4 grid at ab81cec, before task.balance_if_types and train.prompt_order_seed existed)
    keeps its id, so its directory resumes and the leaderboards that name it stay true; setting the key
    makes another run."""
    from dataclasses import replace

    from semibench import config
    from semibench.runs import run_id

    p6x8 = {"task.name": "mixed", "loss.objective": "group_dpo", "train.sync_every": "inf", "sampling.samples_per_prompt": "8",
            "train.prompts_per_step": "6", "train.steps": "12", "train.checkpoint_every": "12", "train.seed": "0",
            "model.autocast_dtype": "bfloat16", "model.generator_dtype": "bfloat16", "model.dtype": "float32", "reward.dtype": "bfloat16"}  # as resolved there: pinned, so `auto` on this CPU does not enter
    cfg = config.resolve("smol", p6x8)
    assert run_id(cfg) == "mixed-group_dpo-sinf-smol-seed0-e8dd58c0"
    balanced = run_id(replace(cfg, task=replace(cfg.task, balance_if_types=True)))
    assert balanced.startswith("mixed-group_dpo-sinf-smol-seed0-") and balanced != run_id(cfg)
    reordered = run_id(replace(cfg, train=replace(cfg.train, prompt_order_seed=1)))
    assert reordered.startswith("mixed-group_dpo-sinf-smol-seed0-") and reordered not in (run_id(cfg), balanced)
