"""Progress in every log: plain periodic lines when stderr is not a terminal (nohup, Slurm, CI)."""

import io
import os
import re
import subprocess
import sys
import time

from semibench.cli.progress import PlainProgress


def test_plain_progress_prints_step_elapsed_eta_and_info_throttled():
    stream = io.StringIO()
    with PlainProgress(stream, interval_s=3600) as bar:  # throttled: the first update and the finish print
        job = bar.add_task("train", total=4, info="loading")
        for step in range(4):
            bar.update(job, completed=step + 1, info=f"reward {step / 10:.3f}")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and re.search(r"\] train 1/4 25% \d+s ETA \d+s reward 0\.000$", lines[0]), lines
    assert re.search(r"\] train 4/4 100% \d+s reward 0\.300$", lines[1]), lines

    stream = io.StringIO()
    with PlainProgress(stream, interval_s=0) as bar:  # unthrottled: one line per update, never more
        whole = bar.add_task("grid (steps)", total=10, info="")
        for _ in range(3):
            bar.advance(whole)
    lines = stream.getvalue().splitlines()  # and one where it stopped, unfinished
    assert len(lines) == 4 and all("ETA" in line for line in lines) and "grid (steps) 3/10 30%" in lines[2] and lines[3].count("3/10") == 1


def test_a_long_quiet_call_still_prints_a_heartbeat_line_and_none_after_the_context():
    stream = io.StringIO()
    with PlainProgress(stream, interval_s=3600, heartbeat_s=0.05) as bar:
        job = bar.add_task("seed model eval", total=160)
        bar.update(job, completed=0, info="math_heldout")  # then one generate call that reports nothing for a while
        time.sleep(0.6)
    during = stream.getvalue().splitlines()
    time.sleep(0.3)
    assert len(stream.getvalue().splitlines()) == len(during)  # the heartbeat stops with the context
    assert len(during) >= 4 and all("seed model eval 0/160 0%" in line and line.endswith("math_heldout") for line in during), during


def test_a_train_run_logs_plain_progress_lines_when_not_on_a_terminal(tmp_path):
    env = {**os.environ, "SEMIBENCH_PROGRESS_SECONDS": "0", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "semibench", "train", "--preset", "tiny", "--task", "math", "--objective", "dpo",
                             "--sync-every", "1", "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    steps = [line for line in result.stderr.splitlines() if re.search(r"\] train \d/3 ", line)]
    assert [re.search(r"train (\d)/3", line).group(1) for line in steps] == ["1", "2", "3"], result.stderr[-2000:]
    assert "ETA" in steps[0] and "reward" in steps[-1]
    assert "\x1b[" not in result.stderr  # no terminal control codes in a log


def test_the_wall_split_takes_step_phases_from_metrics_and_evaluations_from_their_results(tmp_path):
    import datetime
    import json
    import time

    from semibench.wallclock import WallSplit
    from semibench.runs import RunDir

    run = RunDir.at(tmp_path / "run")
    run.path.mkdir()
    rows = [{"step": s, "time/sync": 0.5, "time/generate": 2.0, "time/reward": 1.0, "time/train": 3.0} for s in range(4)]
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    split = WallSplit(started=time.time() - 60)
    split.add_training(run, first_step=2, wall_s=20.0)  # a resumed run: steps 2 and 3 are this call's
    assert split.seconds == {"sync": 1.0, "generate": 4.0, "reward": 2.0, "train": 6.0, "training setup and checkpoints": 7.0}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    old = "2020-01-01T00:00:00+00:00"  # found on disk from an earlier grid: not this one's time
    results = [{"benchmark": "ifeval", "seconds": 50.0, "engine_start_seconds": 20.0, "date": now},
               {"benchmark": "math_heldout", "seconds": 30.0, "engine_start_seconds": None, "date": now},
               {"benchmark": "math_heldout", "seconds": 99.0, "engine_start_seconds": None, "date": old}]
    split.add_evaluations(results, wall_s=85.0)
    assert split.seconds["eval ifeval"] == 30.0 and split.seconds["eval math_heldout"] == 30.0
    assert split.seconds["eval engine start"] == 20.0 and split.seconds["eval other (loading, judges)"] == 5.0


def test_the_eta_ignores_time_spent_before_any_progress(monkeypatch):
    """A grid evaluates the seed model (minutes, no training step) before its first step: the step ETA must
    come from the steps' own rate, not from the minutes before them."""
    from semibench.cli import progress

    now = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    stream = io.StringIO()
    bar = PlainProgress(stream, interval_s=0)
    whole = bar.add_task("grid (steps)", total=100)
    now[0] += 600  # ten minutes of seed-model evaluation
    bar.update(whole, info="runs: 0 done")  # the first run starts
    now[0] += 5
    bar.advance(whole)  # one step in 5 s
    assert "grid (steps) 1/100 1% 10m05s ETA 8m15s" in stream.getvalue().splitlines()[-1]  # 99 steps x 5 s, elapsed 10 min
