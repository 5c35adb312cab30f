import pytest

from semibench.sync import StaleRolloutError, check_fresh, window_start

EXPECTED = {
    1: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    3: [0, 0, 0, 3, 3, 3, 6, 6, 6, 9],
    None: [0] * 10,
}


@pytest.mark.parametrize("sync_every", [1, 3, None])
def test_version_table(sync_every):
    versions = [window_start(step, sync_every) for step in range(10)]
    assert versions == EXPECTED[sync_every]
    for step, version in enumerate(versions):
        check_fresh(step, version, sync_every)  # the version the dial picks is always fresh enough


@pytest.mark.parametrize("sync_every,step,version", [(1, 5, 4), (3, 3, 0), (3, 8, 5), (3, 2, 3)])
def test_batch_older_than_window_raises(sync_every, step, version):
    with pytest.raises(StaleRolloutError, match="staleness"):
        check_fresh(step, version, sync_every)


def test_offline_never_stale():
    check_fresh(10_000, 0, None)
