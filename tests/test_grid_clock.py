"""The grid's ETA: every step and evaluation left, each at the measured cost of its kind (wallclock.GridClock)."""

import datetime
import io
import re

from semibench import grid
from semibench.cli.progress import PlainProgress
from semibench.runs import RunDir
from semibench.wallclock import GridClock, RunWork

NOW = datetime.datetime.now(datetime.timezone.utc).isoformat()


def _clock() -> GridClock:
    return GridClock([RunWork("offline", 4, ("math", "ifeval"), modelled_step_s=1.0),
                      RunWork("online", 4, ("math", "ifeval"), modelled_step_s=3.0),
                      RunWork("online", 4, ("math", "ifeval"), modelled_step_s=3.0)])


def test_unmeasured_arms_cost_their_model_scaled_by_what_the_measured_arms_took():
    clock = _clock()
    clock.measured([{"benchmark": "math", "seconds": 12.0, "engine_start_seconds": 2.0, "date": NOW},
                    {"benchmark": "ifeval", "seconds": 20.0, "date": NOW}])
    assert clock.seconds_left(now=0.0) == 4 * 1.0 + 30 + 2 * (4 * 3.0 + 30)  # nothing stepped: the model as it is

    for seconds in (5.0, 1.0, 1.0, 1.0):  # the offline arm: its window's generation on step 0, 2 s a step on average
        clock.stepped(0, seconds)
    assert clock.seconds_left(now=0.0) == 30 + 2 * (4 * 3.0 + 30)  # a run's first steps do not measure its arm yet
    clock.trained(0, setup_seconds=5.0)
    clock.start_evaluating(0, now=100.0)
    online = 4 * 3.0 * 2 + 5.0 + 30  # twice its model too, plus a run's setup, plus its evaluations
    assert clock.seconds_left(now=110.0) == (30 - 10) + 2 * online  # the running evaluation counts down
    assert clock.seconds_left(now=500.0) == 2 * online  # and never below nothing when it overruns
    clock.evaluated(0)

    for _ in range(4):
        clock.stepped(1, 7.0)
    clock.trained(1, setup_seconds=5.0)
    clock.evaluated(1)
    assert clock.seconds_left(now=0.0) == 4 * 7.0 + 5.0 + 30  # the online arm's own steps replace its scaled model


def test_after_the_last_step_the_last_evaluation_is_still_left():
    # The step-rate ETA said 0 at 240/240 while the last run's evaluation (minutes) was still to come.
    clock = _clock()
    clock.measured([{"benchmark": "math", "seconds": 10.0, "date": NOW}, {"benchmark": "ifeval", "seconds": 20.0, "date": NOW}])
    for run in (0, 1, 2):
        for _ in range(4):
            clock.stepped(run, 2.0)
        clock.trained(run, setup_seconds=0.0)
        if run < 2:
            clock.evaluated(run)
    clock.start_evaluating(2, now=0.0)
    assert clock.seconds_left(now=1.0) == 29.0


def test_plain_progress_prints_the_eta_it_is_given_even_with_every_step_done():
    stream = io.StringIO()
    with PlainProgress(stream, interval_s=0, heartbeat_s=0) as bar:
        whole = bar.add_task("grid (steps)", total=2, info="", eta=lambda: 95.0)
        bar.advance(whole)
        bar.advance(whole)
    lines = stream.getvalue().splitlines()
    assert re.search(r"grid \(steps\) 1/2 50% \d+s ETA 1m35s", lines[0]), lines
    assert re.search(r"grid \(steps\) 2/2 100% \d+s ETA 1m35s", lines[-1]), lines


def test_an_online_step_is_modelled_dearer_than_an_offline_one():
    # Online generation is one call of a step's samples; semi-online one per window of 4 steps; offline one per 16-step chunk.
    configs = {cfg.train.sync_every: cfg for cfg in grid.expand(grid.GridSpec(objectives=("dpo",), seeds=(0,)))}
    step = configs[1].train.prompts_per_step * configs[1].sampling.samples_per_prompt
    assert configs[None].train.rollout_chunk_steps == 16
    assert {s: grid.sequences_per_call(c) for s, c in configs.items()} == {None: 16 * step, 4: 4 * step, 1: step}
    modelled = {s: grid.modelled_step_seconds(c) for s, c in configs.items()}
    assert modelled[1] > modelled[4] > modelled[None]
    assert len({grid.arm_of(c) for c in configs.values()}) == 3


def test_the_evaluations_left_follow_the_validation_seeds_and_the_results_on_disk(tmp_path):
    seed0, seed1 = grid.expand(grid.GridSpec(objectives=("grpo",), seeds=(0, 1)))
    benchmarks = ("math_heldout", "ifeval")
    # smol: held-out math at step 10 of seed 0 only, then both benchmarks on the final checkpoint
    assert grid.evaluations_left(seed0, tmp_path, benchmarks) == ("math_heldout", "math_heldout", "ifeval")
    assert grid.evaluations_left(seed1, tmp_path, benchmarks) == ("math_heldout", "ifeval")
    done = RunDir(tmp_path, seed0).eval_dir(20) / "ifeval.json"
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    assert grid.evaluations_left(seed0, tmp_path, benchmarks) == ("math_heldout", "math_heldout")


def test_the_clock_reads_this_grids_evaluations_only_and_skips_a_torn_file(tmp_path):
    import json

    configs = grid.expand(grid.GridSpec(objectives=("grpo",), seeds=(0,)))
    result = {"benchmark": "ifeval", "seconds": 50.0, "engine_start_seconds": 10.0, "date": NOW}
    mine = RunDir(tmp_path, configs[0]).eval_dir(20) / "ifeval.json"
    seed_row = grid.seed_dir(tmp_path, configs[0].model.name) / "eval" / "ifeval.json"
    foreign = tmp_path / "math-dpo-s1-tiny-seed0-0000" / "eval" / "step_000003" / "ifeval.json"
    for path, seconds in ((mine, 50.0), (seed_row, 50.0), (foreign, 1.0)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**result, "seconds": seconds}))
    (seed_row.parent / "math_heldout.json").write_text('{"benchmark": "math_held')  # torn: skipped, not fatal
    clock = grid.grid_clock(configs, tmp_path, ("math_heldout", "ifeval"))
    assert clock.eval_s == {"ifeval": [40.0, 40.0]}
    assert clock.runs[0].evaluations == ("math_heldout", "math_heldout")  # its final ifeval is on disk
