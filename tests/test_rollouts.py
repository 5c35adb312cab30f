import random

import torch

from semibench.training import rollouts


def test_dpo_pairs_binary_picks_correct_vs_incorrect_and_skips_uniform_groups():
    grid = [[0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    pairs = rollouts.dpo_pairs(grid, [True] * 4, random.Random(0))
    assert pairs.frac_valid_prompts == 0.5
    assert len(pairs.chosen) == 2
    for c, r in zip(pairs.chosen, pairs.rejected):
        assert c // 4 == r // 4  # same prompt
        assert grid[c // 4][c % 4] == 1.0 and grid[r // 4][r % 4] == 0.0
    assert pairs.chosen[1] == 3 * 4 + 2


def test_dpo_pairs_scalar_best_vs_worst():
    grid = [[0.2, 0.9, 0.1, 0.5], [0.3, 0.3, 0.3, 0.3]]
    pairs = rollouts.dpo_pairs(grid, [False, False], random.Random(0))
    assert (pairs.chosen, pairs.rejected, pairs.frac_valid_prompts) == ([1], [2], 0.5)


def test_group_dpo_all_pairs():
    pairs = rollouts.group_dpo_pairs([[1.0, 0.0, 1.0]], [True])
    assert sorted(zip(pairs.chosen, pairs.rejected)) == [(0, 1), (2, 1)]


def test_grpo_groups_drop_groups_without_signal():
    groups = rollouts.grpo_groups([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], scale_by_std=False)
    assert groups.indices == [0, 1, 4, 5]
    assert groups.advantages == [0.5, -0.5, -0.5, 0.5]
    assert groups.frac_valid_prompts == 2 / 3


def test_pack_right_aligns_completions():
    batch = rollouts.pack([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], [[-0.1, -0.2], [-0.3, -0.4, -0.5]], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 1, 2], [0, 8, 3, 4, 9]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 0, 1, 2, 3]]
    assert batch.completion_mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert torch.allclose(batch.generator_logps, torch.tensor([[0.0, -0.1, -0.2], [-0.3, -0.4, -0.5]]))
