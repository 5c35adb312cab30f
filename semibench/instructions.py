"""semibench's synthetic instruction set: the offline stand-in for WildChat first turns.

Seeded combinations of a request, a subject and a constraint. Labelled `synthetic` wherever it is
used: it exercises the non-verifiable path without a download; it is not a benchmark.
"""

from __future__ import annotations

import itertools
import random

REQUESTS = [
    "Write a short poem about {s}",
    "Explain {s} to a ten-year-old",
    "Give three practical tips about {s}",
    "Write a haiku about {s}",
    "Summarize the main ideas of {s}",
    "Write a friendly email inviting a colleague to talk about {s}",
    "List the pros and cons of {s}",
    "Describe a typical day that involves {s}",
    "Write a product description for something related to {s}",
    "Give a step-by-step plan for learning about {s}",
    "Write a two-sentence story about {s}",
    "Explain a common misconception about {s}",
    "Write a tweet about {s}",
    "Compare {s} with something from everyday life",
    "Write a short dialogue between two friends about {s}",
    "Suggest five names for a blog about {s}",
    "Write a motivational message about {s}",
    "Explain why {s} matters",
]

SUBJECTS = [
    "gardening", "the water cycle", "learning a new language", "black holes", "public libraries",
    "bicycles", "time management", "volcanoes", "baking bread", "the moon", "recycling",
    "honeybees", "chess", "rainy days", "video games", "the ocean", "friendship", "coffee",
    "electric cars", "mountains", "museums", "photosynthesis", "sleep", "city parks", "robots",
    "winter", "music practice", "healthy breakfasts", "trains", "the internet", "origami",
    "camping", "dinosaurs", "saving money", "volunteering", "lighthouses",
]

CONSTRAINTS = [
    "",
    " in under 50 words",
    " using exactly three sentences",
    " without using the letter 'z'",
    " in a formal tone",
    " in a humorous tone",
    " as a numbered list",
    " and end with a question",
    " using simple words",
    " in the style of a news headline followed by one sentence",
    " and include the word 'remarkable'",
    " in all lowercase letters",
]


def synthetic_instructions(n: int, seed: int = 0) -> list[str]:
    """`n` distinct instructions, the same list for the same seed. At most ~7.7k exist."""
    combos = list(itertools.product(REQUESTS, SUBJECTS, CONSTRAINTS))
    if n > len(combos):
        raise ValueError(f"the synthetic instruction set has {len(combos)} prompts; asked for {n}")
    rng = random.Random(seed)
    picked = rng.sample(combos, n)
    return [request.format(s=subject) + constraint + "." for request, subject, constraint in picked]
