"""A seeded corpus of hostile completions for the Math-Verify reward, with known-correct controls.

Shared by a small test (`tests/test_math_fuzz.py`) and the large-corpus benchmark (`semibench bench
math-fuzz`). Every item is (completion, gold, expected): expected is 1.0 for a control whose boxed
answer equals the gold, and None for a hostile item, which must score 0.0 or 1.0 and never hang or
crash the verifier. Controls are interleaved so a verifier that breaks under load shows it.
"""

from __future__ import annotations

import random

HOSTILE_KINDS = ("huge_exponent", "deep_nesting", "long_string", "matrix", "newcommand", "big_integer", "long_tuple", "junk_latex")


def hostile(kind: str, rng: random.Random) -> str:
    if kind == "huge_exponent":
        return rf"\boxed{{{rng.randint(2, 9)}^{{{rng.randint(2, 9)}^{{{rng.randint(10, 99)}^{{{rng.randint(100, 999)}}}}}}}}}"
    if kind == "deep_nesting":
        depth = rng.randint(500, 5000)
        return r"\boxed{" + "(" * depth + "1" + ")" * depth + "}"
    if kind == "long_string":
        return "x" * rng.randint(100_000, 1_000_000) + r" \boxed{" + "9" * rng.randint(1, 50) + "}"
    if kind == "matrix":
        n = rng.randint(5, 40)
        rows = r" \\ ".join(" & ".join(str(rng.randint(-9, 9)) for _ in range(n)) for _ in range(n))
        return rf"$\boxed{{\begin{{pmatrix}} {rows} \end{{pmatrix}}^{{{rng.randint(10, 99)}}}}}$"
    if kind == "newcommand":
        return r"\newcommand{\a}{\a\a}\boxed{\a}"
    if kind == "big_integer":
        return rf"\boxed{{{rng.randint(1, 9)}{'0' * rng.randint(5000, 20000)}}}"
    if kind == "long_tuple":
        return r"\boxed{(" + ", ".join(str(rng.randint(0, 99)) for _ in range(rng.randint(200, 2000))) + ")}"
    if kind == "junk_latex":
        return "".join(rng.choice([r"\frac{", "}", "{", r"\sqrt", "^", "_", r"\left(", r"\right)", "1", "x", "$"]) for _ in range(rng.randint(50, 5000)))
    raise ValueError(f"unknown kind {kind!r}")


def corpus(num_items: int, seed: int = 0, control_every: int = 4) -> list[tuple[str, str, float | None]]:
    """`num_items` items, one in `control_every` a control with a known score of 1.0."""
    rng = random.Random(seed)
    items = []
    for i in range(num_items):
        if i % control_every == 0:
            answer = str(rng.randint(-10**6, 10**6))
            items.append((rf"The final answer is $\boxed{{{answer}}}$.", answer, 1.0))
        else:
            items.append((hostile(HOSTILE_KINDS[(i // control_every) % len(HOSTILE_KINDS)] if i % 2 else rng.choice(HOSTILE_KINDS), rng), "1", None))
    return items
