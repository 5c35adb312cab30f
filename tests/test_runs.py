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
