import random

import pytest
import torch

from semibench.engines.base import Completion
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


def test_step_units_per_objective():
    grid = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    binary = [True, False]
    # dpo draws from the rng exactly as dpo_pairs does (the run's pairs depend on it).
    rng, twin = random.Random(3), random.Random(3)
    step = rollouts.step_units("dpo", grid, binary, rng, grpo_scale_std=False)
    pairs = rollouts.dpo_pairs(grid, binary, twin)
    assert step.units == list(zip(pairs.chosen, pairs.rejected)) and step.units[0] in [(0, 1), (0, 2)]
    assert rng.random() == twin.random()  # and leaves the stream where dpo_pairs does
    assert (step.advantage, step.frac_valid_prompts, step.num_terms) == (None, 0.5, 1)
    assert step.pair_rows(step.units) == ([0], [1])
    grpo = rollouts.step_units("grpo", grid, binary, random.Random(3), grpo_scale_std=False)
    assert grpo.units == [(0,), (1,), (2,)] and grpo.pairs is None and grpo.num_terms == 3
    assert grpo.row_advantages([0, 2]) == pytest.approx([2 / 3, -1 / 3]) and grpo.row_grpo_weights(grpo.units) is None
    group = rollouts.step_units("group_dpo", grid, binary, random.Random(3), grpo_scale_std=False)
    assert group.units == [(0, 1, 2)] and group.row_advantages([0, 1]) is None
    assert group.flat_pairs() == [(0, 1), (0, 2)] and group.num_terms == 2


def test_group_dpo_trains_each_sample_once_however_many_pairs_it_is_in():
    """Prompt 0: correct {0, 2} x incorrect {1, 3} is 4 pairs over 4 samples; prompt 1 has one pair.
    Rows: 4 + 2 (the distinct samples), where pairs of rows would be 10."""
    grid = [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
    step = rollouts.step_units("group_dpo", grid, [True] * 3, random.Random(0), grpo_scale_std=False)
    assert step.units == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert sorted(step.flat_pairs()) == [(0, 1), (0, 3), (2, 1), (2, 3), (5, 4), (6, 4), (7, 4)]
    assert len(rollouts.unit_rows(step.units)) == 8 and step.num_terms == 7 and step.frac_valid_prompts == 2 / 3
    chosen, rejected = step.pair_rows(step.units[1:])  # a micro-batch of the second unit alone: its own rows
    assert (sorted(chosen), rejected) == ([1, 2, 3], [0, 0, 0])


def test_group_dpo_grpo_weights_count_each_sample_once():
    """The trainer weighs a micro-batch by its share of the pairs; the GRPO term must be the mean over
    the step's distinct samples. Unit A = prompt 0 (4 samples, 3 pairs), unit B = prompt 1 (4 samples,
    4 pairs): 8 samples, 7 pairs. Each micro-batch's weighted row mean x its pair share must sum each
    sample's advantage once, / 8, whatever the split."""
    grid = [[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
    step = rollouts.step_units("group_dpo_grpo", grid, [True, True], random.Random(0), grpo_scale_std=False)
    units = step.units
    assert units == [(0, 1, 2, 3), (4, 5, 6, 7)] and step.num_terms == 7
    for chunks in ([units], [units[:1], units[1:]]):
        total = 0.0
        for chunk in chunks:
            weights = step.row_grpo_weights(chunk)
            rows = rollouts.unit_rows(chunk)
            mean = sum(w * a for w, a in zip(weights, step.row_advantages(rows))) / len(rows)
            total += mean * step.terms(chunk) / step.num_terms
            share = sum(weights) / len(rows) * step.terms(chunk) / step.num_terms
            assert share == pytest.approx(len(rows) / 8)  # each row counts 1 / 8
        assert total == pytest.approx(0.0)  # each group's advantages sum to zero


def test_pack_units_rows_follow_the_units():
    completions = [Completion(i // 2, (20 + i,) * (1 + i % 2), (-0.5,) * (1 + i % 2), "", 0, True) for i in range(4)]
    batch = rollouts.pack_units([(3, 2), (0, 1)], [[5, 6], [7, 8]], completions, pad_id=0)
    # rows: sample 3 (prompt 1, two tokens), sample 2 (prompt 1, one), sample 0 (prompt 0, one), sample 1 (prompt 0, two)
    assert batch.input_ids.tolist() == [[7, 8, 23, 23], [0, 7, 8, 22], [0, 5, 6, 20], [5, 6, 21, 21]]
    assert batch.completion_mask.tolist() == [[1, 1], [0, 1], [0, 1], [1, 1]]


def test_frac_valid_by_kind_counts_each_kinds_prompts_with_a_unit():
    # n = 2: units touch prompts 0 (samples 0, 1), 1 (2, 3) and 3 (6, 7); prompt 2 has none
    units = [(0, 1), (2, 3), (7, 6)]
    assert rollouts.frac_valid_by_kind(units, ["math", "math", "math", "if"], 2) == {"if": 1.0, "math": pytest.approx(2 / 3)}
    assert rollouts.frac_valid_by_kind([(4,), (5,)], ["math", "if", "if"], 2) == {"if": 0.5, "math": 0.0}  # GRPO: one sample per unit
    assert rollouts.frac_valid_by_kind([], ["if"], 4) == {"if": 0.0}


def _shapes(lengths, rows=2, prompt_tokens=None):
    from semibench.training.rollouts import UnitShape

    prompt_tokens = prompt_tokens or [0] * len(lengths)
    return [UnitShape(i, p, n - p, rows) for i, (n, p) in enumerate(zip(lengths, prompt_tokens))]


def test_micro_batches_group_by_length_and_keep_every_unit_once():
    from semibench.training.rollouts import micro_batches

    units = [(0, 1), (2, 3), (4, 5), (6, 7)]  # DPO pairs: two rows each
    lengths = [200, 60, 190, 70]
    # One micro-batch would pad 8 rows to 200 (1,600 tokens); the long pairs together and the short
    # ones together cost 4 x 200 + 4 x 70 = 1,080 plus one more micro-batch's overhead.
    assert micro_batches(units, _shapes(lengths), max_rows=8, overhead_tokens=64) == [[(0, 1), (4, 5)], [(6, 7), (2, 3)]]
    # A split that saves less than it costs is not made.
    assert micro_batches(units, _shapes(lengths), max_rows=8, overhead_tokens=600) == [[(0, 1), (4, 5), (6, 7), (2, 3)]]
    # The row cap holds whatever the lengths.
    groups = micro_batches(units, _shapes([100] * 4), max_rows=4, overhead_tokens=1)
    assert [len(g) for g in groups] == [2, 2]
    assert sorted(u for g in micro_batches(units, _shapes(lengths), max_rows=2) for u in g) == units
    assert micro_batches([], [], max_rows=8) == []


def test_micro_batches_with_shared_prompts_count_each_prompt_once():
    """GRPO: 2 prompts x 4 samples. Shared, a micro-batch runs each distinct prompt once, so long
    prompts no longer decide the split: the samples' lengths do, and a split that would run a prompt
    twice must save more than the prompt costs."""
    from semibench.training.rollouts import UnitShape, micro_batches

    units = [(i,) for i in range(8)]
    completion = [120, 10, 110, 20, 100, 15, 115, 25]
    shapes = [UnitShape(i // 4, 400, c, 1) for i, c in enumerate(completion)]  # long prompts: 400 tokens
    by_length = [(0,), (6,), (2,), (4,), (7,), (3,), (5,), (1,)]
    # Whole rows (410-520 tokens): 8 x 520 in one micro-batch, 4 x 520 + 4 x 425 in two: split.
    assert micro_batches(units, shapes, max_rows=8, overhead_tokens=64) == [by_length[:4], by_length[4:]]
    # Shared: 2 x 399 prompt tokens + 8 x 121 in one; two would run both prompts twice: not split.
    assert micro_batches(units, shapes, max_rows=8, share_prompts=True, overhead_tokens=64) == [by_length]
    cheap_prompts = [UnitShape(i // 4, 3, c, 1) for i, c in enumerate(completion)]  # prompts cost ~nothing: split by sample length
    assert micro_batches(units, cheap_prompts, max_rows=8, share_prompts=True, overhead_tokens=64) == [by_length[:4], by_length[4:]]
    capped = micro_batches(units, shapes, max_rows=3, share_prompts=True, overhead_tokens=0)
    assert max(len(b) for b in capped) <= 3 and sorted(u for b in capped for u in b) == units


def test_pack_shares_prompts_runs_each_once_and_continues_positions():
    from semibench.training import rollouts

    prompts, completions = [[5, 6, 7], [8, 9], [5, 6, 7]], [[1, 2], [3], [4, 4, 4]]
    plain = rollouts.pack(prompts, completions, [[-0.5] * len(c) for c in completions], pad_id=0)
    batch = rollouts.pack(prompts, completions, [[-0.5] * len(c) for c in completions], pad_id=0, share_prompts=True)
    assert batch.shared_prompts.input_ids.tolist() == [[5, 6], [0, 8]] and batch.shared_prompts.row_prompt.tolist() == [0, 1, 0]
    assert batch.input_ids.tolist() == [[0, 7, 1, 2], [0, 0, 9, 3], [7, 4, 4, 4]]  # a prompt's last token leads each row
    assert batch.position_ids[0, -3:].tolist() == [2, 3, 4] and batch.position_ids[1, -2:].tolist() == [1, 2]
    assert torch.equal(batch.completion_mask, plain.completion_mask) and torch.equal(batch.generator_logps, plain.generator_logps)
    assert (plain.num_tokens, batch.num_tokens) == (5 + 3 + 6, 3 + 9)
    with pytest.raises(ValueError, match="2 tokens"):
        rollouts.pack([[5]], [[1]], [[-0.5]], pad_id=0, share_prompts=True)


def test_the_step_is_the_same_update_however_its_units_are_split(monkeypatch):
    """train_step with length-aware micro-batches gives the update of one micro-batch (up to float
    order), with each prompt run once or with every row running its prompt."""
    import random

    import torch

    from semibench import config
    from semibench.engines.base import Completion
    from semibench.training import rollouts, train as T

    overrides = {"task.name": "math", "loss.objective": "grpo", "model.autocast_dtype": "", "train.micro_batch_size": 16}
    cfg = config.resolve("tiny", overrides)
    g = torch.Generator().manual_seed(0)
    prompt_ids = [torch.randint(5, 60, (n,), generator=g).tolist() for n in (3, 9)]
    completions = [Completion(p, tuple(torch.randint(5, 60, (n,), generator=g).tolist()), (-1.0,) * n, "x", 0, True)
                   for p, n in [(0, 2), (0, 12), (0, 4), (0, 3), (1, 11), (1, 2), (1, 9), (1, 5)]]
    grid, binary = [[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]], [True, True]

    packed = []
    pack_units = rollouts.pack_units
    monkeypatch.setattr(rollouts, "pack_units", lambda chunk, *a: packed.append(len(chunk)) or pack_units(chunk, *a))

    def update(overhead: int, share_prompts: bool = True) -> tuple[dict, dict]:
        monkeypatch.setattr(rollouts, "MICRO_BATCH_OVERHEAD_TOKENS", overhead)
        # Activation checkpointing turns prompt sharing off (a recomputed block must not append to a cache).
        run_cfg = cfg if share_prompts else config.resolve("tiny", {**overrides, "dist.activation_checkpointing": "true"})
        models = T.load_models(run_cfg)
        optimizer = torch.optim.SGD(models.policy.parameters(), lr=1.0)  # the update is the gradient (Adam would magnify float-order noise in ~0 gradients)
        metrics = T.train_step(run_cfg, models, optimizer, prompt_ids, completions, grid, binary, random.Random(0))
        return metrics, {k: v.detach().clone() for k, v in models.policy.state_dict().items()}

    one_metrics, one = update(10**6)  # never worth a split: one micro-batch of 8 rows, each prompt run once
    assert packed == [8]
    for share_prompts in (True, False):
        # Every split that saves a padded token: by sample length when shared, else one per row (8 distinct lengths).
        del packed[:]
        split_metrics, split = update(0, share_prompts)
        assert len(packed) > 1 and (share_prompts or packed == [1] * 8)
        for key in ("grpo_loss", "kl", "logit_entropy", "grad_norm"):
            assert split_metrics[key] == pytest.approx(one_metrics[key], rel=1e-5, abs=1e-7), key
        for name in one:
            torch.testing.assert_close(split[name], one[name], rtol=1e-4, atol=1e-6)
    assert split_metrics["train_tokens"] > one_metrics["train_tokens"]  # each prompt ran 4 times instead of once
    initial = T.load_models(cfg).policy.state_dict()
    assert sum(float((one[n] - initial[n]).abs().sum()) for n in one) > 1e-3  # the update moved the weights
