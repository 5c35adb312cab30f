"""The paper's data on hand-made fixtures with the hub datasets' columns (tests/assets/)."""

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from semibench import paper_data
from semibench.config import ConfigError, TaskConfig
from semibench.tasks import load_prompts

ASSETS = Path(__file__).parent / "assets"
NUMINA = ASSETS / "numina_cot.jsonl"
WILDCHAT = ASSETS / "wildchat_1m.jsonl"

# The 7 fixture problems the filter must keep, with their gold answers.
NUMINA_KEPT = {
    "Given $f(x)=x^2+1$, find $f(3)$.": "10",
    "Find the positive real number $x$ with $x^2=4$.": "2",
    "What is $1+2+\\cdots+10$?": "55",
    "How many positive divisors does $36$ have?": "9",
    "Compute the remainder when $2^{10}$ is divided by $7$.": "2",
    "Tom has 3 apples and buys 5 more. How many apples does he have now?": "8",
    "In triangle $ABC$, angle $A$ is $60^\\circ$ and angle $B$ is $70^\\circ$. Find angle $C$ in degrees.": "50",
}
WILDCHAT_KEPT = {
    "Write a haiku about autumn leaves.",
    "Explain the difference between a list and a tuple in Python.",
    "Give me three tips for a job interview.",  # its whitespace variant is a duplicate
    "What is the capital of Australia?",
    "Translate 'good morning' into French.",
    "Summarize the plot of Hamlet in two sentences.",
    "Write a SQL query that counts rows in a table named users.",
}


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def split_numina(data, seed=0):
    return paper_data.filter_numina(data, seed, held_out=2)


def test_numina_filter_keeps_exactly_the_right_rows_and_counts_why():
    result = split_numina(rows(NUMINA))
    kept = {" ".join(p.problem.split()): p.answer for split in result.splits.values() for p in split}
    assert kept == {" ".join(k.split()): v for k, v in NUMINA_KEPT.items()}
    assert result.num_rows == 17
    assert dict(result.dropped) == {
        "source:orca_math": 1, "source:synthetic_amc": 1, "source:synthetic_math": 1,
        "proof": 2, "multiple_choice": 3, "no_boxed_answer": 1, "duplicate": 1,
    }


def test_numina_split_sizes_disjoint_and_ranked_by_seeded_hash():
    result = split_numina(rows(NUMINA))
    test, valid, train = (result.splits[k] for k in ("test", "valid", "train"))
    assert (len(test), len(valid), len(train)) == (2, 2, 3)
    # The split is the order of sha256(seed, problem): recompute it by hand.
    by_rank = sorted(NUMINA_KEPT, key=lambda p: paper_data.rank_key(0, " ".join(p.split())))
    assert [" ".join(p.problem.split()) for p in test + valid + train] == [" ".join(p.split()) for p in by_rank]


def test_numina_split_is_reproducible_and_independent_of_row_order():
    data = rows(NUMINA)
    first = split_numina(data).splits
    for shuffle_seed in range(5):
        shuffled = data[:]
        random.Random(shuffle_seed).shuffle(shuffled)
        assert split_numina(shuffled).splits == first
    assert split_numina(data, seed=1).splits != first  # the seed does move problems between splits


@pytest.mark.parametrize("problem,answer,expected", [
    ("Which is even?\nA: $x$\nB: $x^2$\nC: $x^3$\nD: $\\sin x$", "B", True),
    ("Pick one: (A) 1 (B) 2 (C) 3", "2", True),
    ("Evaluate. $\\textbf{(A) }1\\qquad\\textbf{(B) }2\\qquad\\textbf{(C) }3$", "2", True),
    ("The answer is one of the options.", "\\textbf{(D)}", True),
    ("Let A. be a point and B. another. Find AB if they are 3 apart.", "3", False),  # two markers are not a choice list
    ("Find the area of triangle ABC with A=(0,0), B=(1,0), C=(0,1).", "\\frac{1}{2}", False),
    ("Solve for E: 2E = 10.", "5", False),
])
def test_multiple_choice_detection(problem, answer, expected):
    assert paper_data.is_multiple_choice(problem, answer) is expected


@pytest.mark.parametrize("problem,expected", [
    ("Prove that 2 is prime.", True), ("Show that $x>0$.", True), ("求证：a>b。证明如下", True),
    ("The proof of the theorem is left out; find x.", True), ("A store approved 5 loans. How many remain?", False),
    ("Find all x with x^2 = 4.", False),
])
def test_proof_detection(problem, expected):
    assert paper_data.is_proof(problem) is expected


def test_wildchat_sampler_keeps_first_english_nontoxic_unique_turns():
    result = paper_data.sample_wildchat(rows(WILDCHAT), num_train=5, num_valid=2)  # 7 = every usable prompt
    assert set(result.splits["train"]) | set(result.splits["valid"]) == WILDCHAT_KEPT
    assert len(result.splits["train"]) == 5 and len(result.splits["valid"]) == 2
    assert "Now make it about winter instead." not in result.splits["train"] + result.splits["valid"]  # a second turn
    assert dict(result.dropped) == {"language": 1, "toxic": 1, "empty": 1, "duplicate": 1}


def test_wildchat_sample_is_seeded_hash_order_reproducible_and_row_order_free():
    data = rows(WILDCHAT)
    result = paper_data.sample_wildchat(data, num_train=2, num_valid=1)
    by_rank = sorted(WILDCHAT_KEPT, key=lambda t: paper_data.rank_key(0, t))
    assert result.splits == {"valid": by_rank[:1], "train": by_rank[1:3]}  # validation first: fixed whatever the size
    bigger = paper_data.sample_wildchat(data, num_train=4, num_valid=1).splits
    assert bigger["valid"] == result.splits["valid"] and bigger["train"][:2] == result.splits["train"]  # nested pools
    for shuffle_seed in range(5):
        shuffled = data[:]
        random.Random(shuffle_seed).shuffle(shuffled)
        assert paper_data.sample_wildchat(shuffled, num_train=2, num_valid=1).splits == result.splits
    with pytest.raises(ConfigError, match="fewer than the 8"):
        paper_data.sample_wildchat(data, num_train=6, num_valid=2)


def test_task_data_names_load_the_paper_sources(monkeypatch):
    monkeypatch.setattr(paper_data, "NUMINA_HELD_OUT", 2)
    monkeypatch.setattr(paper_data, "WILDCHAT_VALID", 3)
    task = TaskConfig(name="mixed", math_data=f"numina:{NUMINA}", if_data=f"wildchat:{WILDCHAT}", math_template="paper", wildchat_size=4)
    pools = load_prompts(task)
    assert len(pools["math"]) == 3 and len(pools["if"]) == 4
    assert len(load_prompts(replace(task, numina_size=2))["math"]) == 2
    math = pools["math"][0]
    assert math.text.startswith("Given the following problem, reason and give a final answer to the problem.\nProblem: ")
    assert math.text.endswith("where [answer] is the response to the problem.") and math.source.startswith("numina:")
    assert NUMINA_KEPT[math.text.split("Problem: ")[1].split("\nYour response")[0]] == math.gold
    assert {p.text for p in pools["if"]} <= WILDCHAT_KEPT


def test_named_source_errors_are_one_line():
    assert paper_data.named_source("numina", "numina") == "AI-MO/NuminaMath-CoT"
    assert paper_data.named_source("wildchat", "wildchat") == "allenai/WildChat-1M"
    assert paper_data.named_source("gsm8k.jsonl", "numina") is None
    with pytest.raises(ConfigError, match="names no source"):
        paper_data.named_source("numina:", "numina")
    with pytest.raises(ConfigError, match="data file not found"):
        paper_data.numina("train", "missing/numina.jsonl")
    with pytest.raises(ConfigError, match="lacks column"):
        paper_data.numina("train", str(WILDCHAT))


def test_hub_dataset_is_filtered_once_per_version_then_read_from_the_cache(monkeypatch, tmp_path):
    import datasets

    monkeypatch.setenv("SEMIBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(paper_data, "NUMINA_HELD_OUT", 2)
    hub = datasets.Dataset.from_list(rows(NUMINA))  # a real datasets object, as load_dataset returns
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: hub)
    first = paper_data.numina("test")  # "AI-MO/NuminaMath-CoT": no such file, so the hub path
    assert first == paper_data.numina("test", str(NUMINA))  # same filter, same split as the local file
    [cached] = (tmp_path / "paper_data").glob("numina-*-seed0-held2-v1.json")
    monkeypatch.setattr(paper_data, "filter_numina", lambda *a, **k: pytest.fail("filtered again"))
    assert paper_data.numina("test") == first and len(paper_data.numina("train", size=2)) == 2
    assert cached.exists()
