"""Offline (s = inf) is a fixed dataset: a prompt that comes back gets the completions of its first
occurrence, byte for byte, also after a resume; `train.offline_regenerate` samples it afresh."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from semibench import config
from semibench.engines.base import Completion, Sampling
from semibench.training import train as train_module
from semibench.training.pipeline import OfflineDataset, RolloutProducer, chunk_seed
from semibench.training.train import OFFLINE_ROLLOUTS, train

TIMING = ("time/", "tokens_per_s")
N = 2


class SeededGenerator:
    """Deterministic in (call seed, row in the call, sample, prompt): another call, or the same prompt
    at another row of a call, gets other tokens, as a sampler's stream would give."""

    def __init__(self):
        self.version = 0
        self.calls: list[list[tuple[int, ...]]] = []

    def generate(self, prompts, n, sampling):
        self.calls.append([tuple(p) for p in prompts])
        return [Completion(row, (sampling.seed % 1000, row, j, sum(p)), (-0.25 * j, -1.0 / (row + 3)), f"{row}.{j}", self.version, True)
                for row, p in enumerate(prompts) for j in range(n)]

    def load_weights(self, version, state):
        self.version = version


# 2 prompts a step from a pool of 5 that holds "ab" twice: steps are (ab, cde), (f, ab), (ijk, ab),
# (cde, f), (ab, ijk), (ab, cde). Every prompt returns; "ab" also within the first call.
POOL = ["ab", "cde", "f", "ab", "ijk"]
IDS = {"ab": (97, 98), "cde": (99, 100, 101), "f": (102,), "ijk": (105, 106, 107)}


def prompts_at(step):
    return [POOL[(2 * step) % 5], POOL[(2 * step + 1) % 5]]


def _producer(gen, offline, chunk_steps=2, total=6, ahead=False):
    return RolloutProducer(gen, prompts_at, lambda p: [ord(ch) for ch in p], N, Sampling(seed=None), seed=1, sync_every=None,
                           total_steps=total, chunk_steps=chunk_steps, ahead=ahead, offline=offline)


def _dataset(path=None, total=6):
    return OfflineDataset(OfflineDataset.returning_keys((prompts_at(t) for t in range(total)), str), path)


def _collect(producer, steps):
    out = {}
    for step in steps:
        batch, _ = producer.get(step)
        out[step] = ([(p, [(c.token_ids, c.logprobs, c.text, c.prompt_index) for c in batch.completions[i * N : (i + 1) * N]])
                      for i, p in enumerate(batch.prompts)], batch.reused)
    producer.close()
    return out


def _samples(got):
    return {step: [(p, [c[:3] for c in cs]) for p, cs in rows] for step, (rows, _) in got.items()}


@pytest.mark.parametrize("ahead", [False, True])
def test_a_returning_prompt_gets_its_first_completions(ahead):
    gen = SeededGenerator()
    got = _collect(_producer(gen, _dataset(), ahead=ahead), range(6))
    first = {}
    for step in range(6):
        rows, _ = got[step]
        for i, (prompt, completions) in enumerate(rows):
            assert [c[3] for c in completions] == [i, i]  # indexed within the step
            first.setdefault(prompt, [c[:3] for c in completions])
            assert [c[:3] for c in completions] == first[prompt]
    # Each prompt is generated once, at its first occurrence, by the call of its chunk (and seed).
    assert gen.calls == [[IDS["ab"], IDS["cde"], IDS["f"]], [IDS["ijk"]]]
    seeds = {p: {c[0][0] for c in cs} for step in range(6) for p, cs in got[step][0]}
    assert seeds == {"ab": {chunk_seed(1, 0) % 1000}, "cde": {chunk_seed(1, 0) % 1000}, "f": {chunk_seed(1, 0) % 1000}, "ijk": {chunk_seed(1, 2) % 1000}}
    assert [got[step][1] for step in range(6)] == [0, 1, 1, 2, 2, 2]  # prompts of the step reused


def test_without_the_dataset_a_returning_prompt_is_sampled_afresh():
    gen = SeededGenerator()
    got = _collect(_producer(gen, None), range(6))
    ab = [cs for step in range(6) for p, cs in got[step][0] if p == "ab"]
    assert len(ab) == 5 and len({tuple(c[0] for c in cs) for cs in ab}) == 5
    assert [len(call) for call in gen.calls] == [4, 4, 4] and all(reused == 0 for _, reused in got.values())


def test_nothing_returns_nothing_changes(tmp_path):
    """Where no prompt comes back, the calls and rollouts are those of a producer without the dataset."""
    unique = lambda step: [f"p{step}a", f"p{step}b"]  # noqa: E731
    runs = []
    for offline in (OfflineDataset(OfflineDataset.returning_keys((unique(t) for t in range(5)), str), tmp_path / "d.jsonl"), None):
        gen = SeededGenerator()
        producer = RolloutProducer(gen, unique, lambda p: [ord(ch) for ch in p], N, Sampling(seed=None), seed=1, sync_every=None,
                                   total_steps=5, chunk_steps=2, offline=offline)
        runs.append((_collect(producer, range(5)), gen.calls))
    assert runs[0] == runs[1]
    assert not (tmp_path / "d.jsonl").exists()  # nothing kept


def test_the_dataset_refuses_a_finite_window():
    with pytest.raises(ValueError, match="sync_every = None"):
        RolloutProducer(SeededGenerator(), prompts_at, lambda p: [1], N, Sampling(), seed=1, sync_every=4, total_steps=6, offline=_dataset())


def test_resume_reuses_exactly_as_the_uninterrupted_run(tmp_path):
    whole = _collect(_producer(SeededGenerator(), _dataset(tmp_path / "whole.jsonl")), range(6))
    lines = (tmp_path / "whole.jsonl").read_text().splitlines(keepends=True)
    assert [json.loads(line)["first_step"] for line in lines] == [0, 2]  # the calls that made entries

    # Killed at step 3, inside chunk (2, 4): the file holds every call up to it (the call of chunk
    # (2, 4) too), and the resumed run regenerates chunk (2, 4) from its start, as the first time:
    # the same call, the same prompts reused and generated.
    shutil.copy(tmp_path / "whole.jsonl", tmp_path / "kept.jsonl")
    gen = SeededGenerator()
    resumed = _collect(_producer(gen, _dataset(tmp_path / "kept.jsonl")), range(3, 6))
    assert resumed == {step: whole[step] for step in range(3, 6)}  # reuse counts included
    assert gen.calls == [[IDS["ijk"]]]
    assert (tmp_path / "kept.jsonl").read_text() == "".join(lines)  # nothing stored twice

    # Killed while appending chunk (2, 4)'s line: the torn line is dropped, and cut off so the next
    # append starts a clean line.
    (tmp_path / "torn.jsonl").write_text(lines[0] + lines[1][:30])
    gen = SeededGenerator()
    again = _collect(_producer(gen, _dataset(tmp_path / "torn.jsonl")), range(3, 6))
    assert again == {step: whole[step] for step in range(3, 6)} and gen.calls == [[IDS["ijk"]]]
    assert (tmp_path / "torn.jsonl").read_text() == "".join(lines)


def test_a_stored_call_regenerated_keeps_the_stored_completions(tmp_path):
    """A resumed run that regenerates a stored call (another engine, other numerics) keeps what the
    dataset first recorded: the offline dataset never changes once written."""
    _collect(_producer(SeededGenerator(), _dataset(tmp_path / "d.jsonl")), range(2))  # chunk (0, 2): ab, cde, f stored

    class Other(SeededGenerator):
        def generate(self, prompts, n, sampling):
            return [Completion(c.prompt_index, (7,), (-7.0,), "other", 0, False) for c in super().generate(prompts, n, sampling)]

    stored = _collect(_producer(Other(), _dataset(tmp_path / "d.jsonl")), range(2))
    fresh = _collect(_producer(SeededGenerator(), _dataset()), range(2))
    assert _samples(stored) == _samples(fresh)
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 1  # nothing appended twice


# End to end on the tiny preset: a pool of 3 math prompts, 4 a step, so prompts return within and
# across steps; the pool holds 3 items but may hold a text twice (single-digit sums repeat).

def _tiny(**overrides):
    return config.resolve("tiny", {"task.name": "math", "loss.objective": "dpo", "train.sync_every": "inf", "task.num_prompts": 3,
                                   "train.steps": 4, "train.rollout_chunk_steps": 2, **overrides})


def _capture(monkeypatch):
    """Every step's (prompt text, its completions' token ids and log-probs), as the trainer saw them."""
    seen = []
    original = train_module.rollout_metrics

    def spy(prompts, completions, rewards, step, version):
        n = len(completions) // len(prompts)
        seen.append([(p.text, [(c.token_ids, c.logprobs) for c in completions[i * n : (i + 1) * n]]) for i, p in enumerate(prompts)])
        return original(prompts, completions, rewards, step, version)

    monkeypatch.setattr(train_module, "rollout_metrics", spy)
    return seen


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tiny_offline_run_reuses_returning_prompts(tmp_path, monkeypatch):
    seen = _capture(monkeypatch)
    run = train(_tiny(), tmp_path / "runs")
    rows = _rows(run)
    first, occurrences = {}, 0
    for step in seen:
        for text, completions in step:
            occurrences += 1
            first.setdefault(text, completions)
            assert completions == first[text]  # byte-identical: the same token ids and log-probs
    assert occurrences == 16 and len(first) <= 3
    # reused_rollouts is the fraction of a step's rollouts taken from an earlier occurrence.
    assert sum(r["reused_rollouts"] * 4 for r in rows) == pytest.approx(occurrences - len(first))
    assert [r["reused_rollouts"] for r in rows[1:]] == [1.0] * 3  # step 0 held the whole pool
    assert all(r["staleness"] == r["step"] for r in rows)
    assert (run / OFFLINE_ROLLOUTS).exists()


def test_offline_regenerate_samples_returning_prompts_afresh(tmp_path, monkeypatch):
    seen = _capture(monkeypatch)
    run = train(_tiny(**{"train.offline_regenerate": "true"}), tmp_path / "runs")
    assert all(r["reused_rollouts"] == 0.0 for r in _rows(run)) and not (run / OFFLINE_ROLLOUTS).exists()
    by_text = {}
    for step in seen:
        for text, completions in step:
            by_text.setdefault(text, []).append(completions)
    assert any(len({tuple(c) for c in samples}) > 1 for samples in by_text.values())  # a returning prompt got new samples


def _deterministic(run):
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in _rows(run)]


@pytest.mark.parametrize("kept", ["all", "before"])
def test_tiny_offline_resume_is_identical(tmp_path, monkeypatch, kept):
    """A resume re-runs steps 4-5 from the state at step 4 with the dataset file as the crash left it:
    holding every call (kept=all) or only those before the resumed chunk, plus a torn line."""
    cfg = _tiny(**{"train.steps": 6, "train.resume_every": 2})
    whole = train(cfg, tmp_path / "whole")
    monkeypatch.setattr("semibench.training.train.drop_states", lambda root: None)  # a killed run never gets to drop them
    run = train(cfg, tmp_path / "killed")
    monkeypatch.undo()
    (run / "DONE").unlink()  # as if killed after the state at step 4 was saved
    assert [p.name for p in (run / "state").iterdir()] == ["step_000004"]
    if kept == "before":
        path = run / OFFLINE_ROLLOUTS
        lines = [line for line in path.read_text().splitlines(keepends=True) if json.loads(line)["first_step"] < 4]
        path.write_text("".join(lines) + '{"first_step": 4, "entr')
    train(cfg, tmp_path / "killed")
    assert (run / "DONE").exists() and _deterministic(run) == _deterministic(whole)
    assert any(r["reused_rollouts"] > 0 for r in _rows(run)[4:])
    a = load_file(run / "checkpoints" / "step_000006" / "model.safetensors")
    b = load_file(whole / "checkpoints" / "step_000006" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert (run / OFFLINE_ROLLOUTS).read_text() == (whole / OFFLINE_ROLLOUTS).read_text()

