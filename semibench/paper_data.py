"""The paper's training data (paper.md §1.9), rebuilt from the public datasets by name.

NuminaMath-CoT (`AI-MO/NuminaMath-CoT`: columns `source`, `problem`, `solution`, `messages`):
drop the synthetic sources (orca_math, synthetic_amc, synthetic_math), proof problems, multiple-
choice problems and problems without a `\\boxed{}` final answer (no gold for Math-Verify), keep
one row per problem text, then hold out 1,980 validation and 1,980 test problems. The paper
reports 261,440 problems after its filter but not the filter itself; ours is a documented
heuristic (`numina_drop_reason`), so the count on the hub will differ somewhat.

WildChat-1M (`allenai/WildChat-1M`: `conversation` is a list of turns with `role`, `content`,
`language`, `toxic`, ...): the first user message of each conversation, never a later turn;
English and non-toxic only (the paper is silent; Athene-RM-8B and the evaluations are English);
unique texts; 470 validation prompts (standing in for the paper's 470-prompt checkpoint-selection
set, which is not public in that form), then 1,000 training prompts (or as many as asked: the
mixed task's 50k start with the chat task's 1,000, and validation never changes).

Splits and samples are a function of the seed and the texts only: every problem/prompt is ranked
by sha256(seed, text), so the result is the same on every machine, in every run, and whatever
order the rows arrive in, and train never overlaps validation or test.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from semibench.config import ConfigError
from semibench.datafiles import last_boxed, read_jsonl

NUMINA_ID = "AI-MO/NuminaMath-CoT"
WILDCHAT_ID = "allenai/WildChat-1M"
NUMINA_EXCLUDED_SOURCES = frozenset({"orca_math", "synthetic_amc", "synthetic_math"})
NUMINA_HELD_OUT = 1980  # per held-out split (validation and test), paper.md §1.9
WILDCHAT_TRAIN = 1000  # paper.md §1.6: 1,000 WildChat prompts
WILDCHAT_VALID = 470  # the size of the paper's checkpoint-selection set (§1.8)
SPLIT_SEED = 0  # fixed, not the training seed: every run of a grid must see the same test set
NUMINA_SPLITS = ("train", "valid", "test")
WILDCHAT_SPLITS = ("train", "valid")

# "Prove", "show that", ... in the problem statement. Word-bounded so "proved" in a story or
# "approve" never match; "show that" is how most olympiad proofs are phrased.
_PROOF = re.compile(r"\b(prove|proof|show that|demonstrate that)\b|证明", re.IGNORECASE)
# Option markers: "(A)", "A.", "A:", "A：", "A)" and AMC's "\textbf{(A) }". Three distinct letters
# are needed, so a point called "A." at the end of a sentence is not enough.
_OPTION = re.compile(r"(?:(?<![A-Za-z0-9])\(([A-E])\)|(?:^|(?<=[\s$>]))([A-E])\s*[.:：)](?=\s|\$|\\|$))", re.MULTILINE)
# A boxed answer that is a choice letter: "C", "(C)", "\text{C}", "\textbf{(C)}", "C: 12".
_LETTER_ANSWER = re.compile(r"^\s*(?:\\text(?:bf)?\{)?\s*\(?([A-E])\)?\s*\}?\s*(?:[:.].*)?$", re.DOTALL)


@dataclass(frozen=True)
class MathProblem:
    problem: str
    answer: str  # the final answer of the reference solution (its last \boxed{})
    source: str  # NuminaMath's source tag, e.g. "olympiads"


@dataclass
class Filtered:
    """What a filter kept, and how many rows it dropped for each reason (for logs and tests)."""

    splits: dict[str, list]
    dropped: Counter = field(default_factory=Counter)
    num_rows: int = 0


def rank_key(seed: int, text: str) -> str:
    """A stable pseudo-random rank for `text`: sorting by it is a seeded shuffle that ignores row order."""
    return hashlib.sha256(f"{seed}\x00{text}".encode()).hexdigest()


def normalize_text(text: str) -> str:
    """Whitespace-insensitive identity for duplicate detection."""
    return " ".join(text.split())


# --- NuminaMath-CoT ---------------------------------------------------------------------------

def is_proof(problem: str) -> bool:
    return _PROOF.search(problem) is not None


def is_multiple_choice(problem: str, answer: str) -> bool:
    letters = {a or b for a, b in _OPTION.findall(problem)}
    return len(letters) >= 3 or _LETTER_ANSWER.match(answer) is not None


def numina_drop_reason(row: dict) -> str | None:
    """Why the paper's filter drops this row, or None to keep it."""
    if row["source"] in NUMINA_EXCLUDED_SOURCES:
        return f"source:{row['source']}"
    if is_proof(row["problem"]):
        return "proof"
    answer = last_boxed(row["solution"])
    if answer is None or not answer.strip():
        return "no_boxed_answer"
    if is_multiple_choice(row["problem"], answer):
        return "multiple_choice"
    return None


def filter_numina(rows: Iterable[dict], seed: int = SPLIT_SEED, held_out: int | None = None) -> Filtered:
    """Filter, deduplicate and split NuminaMath-CoT rows into train / valid / test."""
    held_out = NUMINA_HELD_OUT if held_out is None else held_out
    out = Filtered(splits={})
    unique: dict[str, tuple[str, MathProblem]] = {}  # normalized problem -> (tie-break key, problem)
    for row in rows:
        out.num_rows += 1
        reason = numina_drop_reason(row)
        if reason is not None:
            out.dropped[reason] += 1
            continue
        item = MathProblem(row["problem"].strip(), last_boxed(row["solution"]).strip(), row["source"])
        key = normalize_text(item.problem)
        # Of two copies of a problem keep the one whose solution ranks first, not the one seen
        # first, so the pick (and its gold answer) does not depend on row order.
        tie = rank_key(seed, f"{row['solution']}\x00{row['problem']}")
        if key in unique:
            out.dropped["duplicate"] += 1
            if tie >= unique[key][0]:
                continue
        unique[key] = (tie, item)
    ranked = sorted(unique, key=lambda k: rank_key(seed, k))
    if len(ranked) <= 2 * held_out:
        raise ConfigError(f"NuminaMath filter kept {len(ranked)} problems, too few to hold out 2 x {held_out}; is this the full dataset?")
    problems = [unique[k][1] for k in ranked]
    out.splits = {"test": problems[:held_out], "valid": problems[held_out : 2 * held_out], "train": problems[2 * held_out :]}
    return out


# --- WildChat-1M ------------------------------------------------------------------------------

def first_user_turn(row: dict, language: str | None = "English") -> tuple[str | None, str | None]:
    """(prompt, None) for a usable first user message, else (None, why it was dropped)."""
    conversation = row.get("conversation") or []
    if not conversation or conversation[0].get("role") != "user":
        return None, "no_first_user_turn"
    first = conversation[0]
    if language is not None and (first.get("language") or row.get("language")) != language:
        return None, "language"
    if first.get("toxic") or row.get("toxic"):
        return None, "toxic"
    text = (first.get("content") or "").strip()
    if not text:
        return None, "empty"
    return text, None


def sample_wildchat(rows: Iterable[dict], seed: int = SPLIT_SEED, num_train: int | None = None,
                    num_valid: int | None = None, language: str | None = "English") -> Filtered:
    """The `num_train + num_valid` unique first-turn prompts that rank first under `seed`.

    Streams: memory is O(num_train + num_valid), not O(rows), so the 1M conversations never sit
    in memory at once. Duplicates share a rank, so a copy of a kept prompt is recognised by its
    rank (counted as "duplicate"); a copy of a prompt ranked out is ranked out again.
    """
    num_train = WILDCHAT_TRAIN if num_train is None else num_train
    num_valid = WILDCHAT_VALID if num_valid is None else num_valid
    out = Filtered(splits={})
    want = num_train + num_valid
    heap: list[tuple[str, str]] = []  # (inverted rank, text): heap[0] is the worst-ranked kept prompt
    kept_ranks: set[str] = set()
    for row in rows:
        out.num_rows += 1
        text, reason = first_user_turn(row, language)
        if reason is not None:
            out.dropped[reason] += 1
            continue
        rank = rank_key(seed, normalize_text(text))
        if rank in kept_ranks:
            out.dropped["duplicate"] += 1
            # Copies may differ in whitespace: keep the shortest (then smallest) text so row order
            # cannot matter. Same rank, so swapping the text in place keeps the heap ordered.
            i = next(i for i, (inv, _) in enumerate(heap) if inv == _invert(rank))
            heap[i] = (heap[i][0], min(heap[i][1], text, key=lambda t: (len(t), t)))
            continue
        item = (_invert(rank), text)
        if len(heap) < want:
            heapq.heappush(heap, item)
        elif item > heap[0]:  # ranks before the worst kept prompt: it takes that one's place
            kept_ranks.discard(_invert(heapq.heapreplace(heap, item)[0]))
        else:
            continue
        kept_ranks.add(rank)
    if len(heap) < want:
        raise ConfigError(f"WildChat sampler found {len(heap)} usable first-turn prompts, fewer than the {want} asked for")
    texts = [text for _, text in sorted(heap, reverse=True)]  # best rank first
    out.splits = {"valid": texts[:num_valid], "train": texts[num_valid:]}
    return out


def _invert(hex_key: str) -> str:
    """Order-reversing map on equal-length hex strings, turning heapq's min-heap into a max-heap."""
    return hex_key.translate(_INVERT_HEX)


_INVERT_HEX = str.maketrans("0123456789abcdef", "fedcba9876543210")


# --- Loading by name --------------------------------------------------------------------------

# `task.math_data=numina` / `task.if_data=wildchat` load these from the hub; `numina:<path or id>`
# applies the same filter to a local .jsonl (or another dataset) with the hub dataset's columns.
NAMED_SOURCES = {"numina": NUMINA_ID, "wildchat": WILDCHAT_ID}


def named_source(spec: str, name: str) -> str | None:
    """The dataset behind `name` or `name:<source>` in a task's data field; None for other specs."""
    head, colon, rest = spec.partition(":")
    if head != name:
        return None
    if colon and not rest:
        raise ConfigError(f"'{spec}' names no source after the colon; use '{name}' or '{name}:<path.jsonl or dataset id>'")
    return rest or NAMED_SOURCES[name]


NUMINA_COLUMNS = ("source", "problem", "solution")
WILDCHAT_COLUMNS = ("conversation",)


@dataclass
class Source:
    rows: Iterable[dict]
    fingerprint: str | None  # a hub dataset's content hash; None for a local file (never cached)


def open_source(spec: str, columns: tuple[str, ...]) -> Source:
    """Rows of a local .jsonl (same columns as the hub dataset) or of an HF dataset id, streamed."""
    path = Path(spec)
    if path.suffix == ".jsonl" or path.exists():
        if not path.exists():
            raise ConfigError(f"data file not found: {path}")
        return Source(_jsonl_rows(path, columns), None)
    try:
        import datasets

        data = datasets.load_dataset(spec, split="train")
    except Exception as exc:  # the hub, the cache and the builder all raise their own types
        raise ConfigError(f"could not load dataset '{spec}' ({type(exc).__name__}); log in / download it, or pass a local .jsonl with its columns") from None
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise ConfigError(f"dataset '{spec}' lacks column(s) {', '.join(missing)} (has {', '.join(data.column_names)})")
    return Source(_dataset_rows(data, columns), data._fingerprint)


def _jsonl_rows(path: Path, columns: tuple[str, ...]) -> Iterator[dict]:
    for line_no, row in read_jsonl(path):
        missing = [c for c in columns if c not in row]
        if missing:
            raise ConfigError(f"{path}:{line_no} lacks column(s) {', '.join(missing)}; the file must have the hub dataset's columns")
        yield row


def _dataset_rows(data, columns: tuple[str, ...]) -> Iterator[dict]:
    wanted = list(columns) + [c for c in ("language", "toxic") if c in data.column_names and c not in columns]
    for batch in data.select_columns(wanted).iter(batch_size=4096):
        for i in range(len(batch[wanted[0]])):
            yield {c: batch[c][i] for c in wanted}


# Bump when a filter or sampler changes what it keeps: cached results of older versions are ignored.
FILTER_VERSION = 1


def _splits(name: str, spec: str, columns: tuple[str, ...], params: str, compute) -> dict[str, list]:
    """`compute(rows)`, cached per hub dataset version: the 860k / 1M-row passes run once per machine,
    not once per run and rank. Local files are small and never cached."""
    from semibench.models import cache_dir
    from semibench.runs import atomic_write_text

    source = open_source(spec, columns)
    if source.fingerprint is None:
        return compute(source.rows)
    path = cache_dir() / "paper_data" / f"{name}-{source.fingerprint}-{params}-v{FILTER_VERSION}.json"
    if path.exists():
        return json.loads(path.read_text())
    splits = compute(source.rows)
    atomic_write_text(path, json.dumps(splits))
    return splits


def numina(split: str = "train", source: str = NUMINA_ID, seed: int = SPLIT_SEED, size: int = 0) -> list[MathProblem]:
    """One split of the filtered NuminaMath-CoT; `size` > 0 keeps the first `size` problems by rank."""
    if split not in NUMINA_SPLITS:
        raise ConfigError(f"NuminaMath split must be one of {', '.join(NUMINA_SPLITS)}, got {split!r}")
    held_out = NUMINA_HELD_OUT

    def compute(rows):
        return {k: [asdict(p) for p in v] for k, v in filter_numina(rows, seed, held_out).splits.items()}

    problems = [MathProblem(**p) for p in _splits("numina", source, NUMINA_COLUMNS, f"seed{seed}-held{held_out}", compute)[split]]
    return problems[:size] if size else problems


def wildchat(split: str = "train", source: str = WILDCHAT_ID, seed: int = SPLIT_SEED, size: int | None = None) -> list[str]:
    """The validation prompts, or `size` training prompts (default: the paper's 1,000)."""
    if split not in WILDCHAT_SPLITS:
        raise ConfigError(f"WildChat split must be one of {', '.join(WILDCHAT_SPLITS)}, got {split!r}")
    num_train, num_valid = size or WILDCHAT_TRAIN, WILDCHAT_VALID

    def compute(rows):
        return sample_wildchat(rows, seed, num_train, num_valid).splits

    return _splits("wildchat", source, WILDCHAT_COLUMNS, f"seed{seed}-valid{num_valid}-train{num_train}", compute)[split]
