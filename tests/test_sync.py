import pytest

from semibench.sync import StaleRolloutError, check_fresh, layer_key, weight_buckets, window_start

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


def test_layer_key_is_the_outermost_index():
    assert layer_key("model.layers.3.self_attn.q_proj.weight") == "model.layers.3"
    assert layer_key("transformer.h.10.mlp.c_fc.bias") == "transformer.h.10"
    assert layer_key("model.norm.weight") == "model.norm.weight"


def test_buckets_are_bounded_and_never_split_a_layer():
    sizes = [("model.embed_tokens.weight", 100), ("model.layers.0.a", 30), ("model.layers.0.b", 30),
             ("model.layers.1.a", 30), ("model.layers.1.b", 30), ("model.norm.weight", 10)]
    # embed alone exceeds the bound; each layer (60) fits but two do not; the norm joins layer 1.
    assert weight_buckets(sizes, 70) == [["model.embed_tokens.weight"], ["model.layers.0.a", "model.layers.0.b"],
                                         ["model.layers.1.a", "model.layers.1.b", "model.norm.weight"]]
    assert weight_buckets(sizes, 10**9) == [[n for n, _ in sizes]]
    assert weight_buckets(sizes, 1) == [["model.embed_tokens.weight"], ["model.layers.0.a", "model.layers.0.b"],
                                        ["model.layers.1.a", "model.layers.1.b"], ["model.norm.weight"]]
