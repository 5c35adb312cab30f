"""Pairwise judges for AlpacaEval 2.0 and Arena-Hard v0.1, chosen by one spec string.

    openai:<model>   any OpenAI-compatible chat endpoint (the API, or a local `vllm serve`); the base URL
                     and key come from OPENAI_BASE_URL / OPENAI_API_KEY and are never written anywhere
    local:<path>     a judge model run by semibench's own engine ("tiny", "smollm2" or a checkpoint dir)
    rm:<path>        a scalar reward model; P(B better) = sigmoid(r_B - r_A), a Bradley-Terry reading
                     of the score difference: a cheap proxy, labelled as such in every result

Both protocols are the upstream ones. AlpacaEval: alpaca-eval's `weighted_alpaca_eval_gpt4_turbo`
prompt (read from the installed package) and its `logprob_parser` over the first token, preference =
2 - P(m) / (P(m) + P(M)); an API judge sees its top-5 log-probs as upstream, a local judge its exact
ones. Arena-Hard: the v0.1 judge system prompt and template (arena-hard-auto `config/judge_config.yaml`,
Apache-2.0), greedy, verdict `[[A>>B]]`..`[[B>>A]]` parsed as in `scoring.arena_hard`; an API judge
gets upstream's second attempt ("continue your judgment ..."), a local judge that wrote no verdict
is asked for one by forced choice: the label with the highest log-likelihood after "My final verdict
is: " (recorded per game as `verdict_source`, since upstream would skip that game). Arena-Hard v2.0
(`version="v2.0"`): the system prompt of each question's category (`utils/judge_utils.py`), one judge call,
and `gen_judgment.py`'s v2.0 get_score (last match of `[[..]]`, else `[..]`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, Sequence

from semibench.config import ConfigError
from semibench.evals.scoring.arena_hard import LABELS, VERDICT_PATTERN, parse_verdict

JUDGE_KINDS = ("openai", "local", "rm")
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
ALPACA_TEMPLATE = "evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt"  # inside the alpaca_eval package
ALPACA_TOKENS = ("m", "M")  # output_1, output_2

ARENA_SYSTEM_PROMPT = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user prompt "
    "displayed below. You will be given assistant A's answer and assistant B's answer. Your job is to evaluate which assistant's "
    "answer is better.\n\nBegin your evaluation by generating your own answer to the prompt. You must provide your answers before "
    "judging any answers.\n\nWhen evaluating the assistants' answers, compare both assistants' answers with your answer. You must "
    "identify and correct any mistakes or inaccurate information.\n\nThen consider if the assistant's answers are helpful, relevant, "
    "and concise. Helpful means the answer correctly responds to the prompt or follows the instructions. Note when user prompt has "
    "any ambiguity or more than one interpretation, it is more helpful and appropriate to ask for clarifications or more information "
    "from the user than providing an answer based on assumptions. Relevant means all parts of the response closely connect or are "
    "appropriate to what is being asked. Concise means the response is clear and not verbose or excessive.\n\nThen consider the "
    "creativity and novelty of the assistant's answers when needed. Finally, identify any missing important information in the "
    "assistants' answers that would be beneficial to include when responding to the user prompt.\n\nAfter providing your "
    "explanation, you must output only one of the following choices as your final verdict with a label:\n\n"
    "1. Assistant A is significantly better: [[A>>B]]\n2. Assistant A is slightly better: [[A>B]]\n3. Tie, relatively the same: "
    "[[A=B]]\n4. Assistant B is slightly better: [[B>A]]\n5. Assistant B is significantly better: [[B>>A]]\n\n"
    'Example output: "My final verdict is tie: [[A=B]]".'
)
# Arena-Hard v2.0 (utils/judge_utils.py JUDGE_SETTINGS): hard prompts keep this prompt; creative writing drops
# the judge's own answer.
ARENA_V2_CREATIVE_PROMPT = ARENA_SYSTEM_PROMPT.replace(
    "Begin your evaluation by generating your own answer to the prompt. You must provide your answers before judging any answers.\n\n", ""
).replace("compare both assistants' answers with your answer.", "compare both assistants' answers.")
ARENA_V2_SYSTEM_PROMPTS = {"hard_prompt": ARENA_SYSTEM_PROMPT, "creative_writing": ARENA_V2_CREATIVE_PROMPT}
ARENA_TEMPLATE = (
    "<|User Prompt|>\n{question}\n\n<|The Start of Assistant A's Answer|>\n{answer_a}\n<|The End of Assistant A's Answer|>"
    "\n\n<|The Start of Assistant B's Answer|>\n{answer_b}\n<|The End of Assistant B's Answer|>"
)
ARENA_RETRY = "continue your judgment and finish by outputting a final verdict label"
FORCED_VERDICT_PREFIX = "\n\nMy final verdict is: "
# rm judges: P(B better) -> label, first bin with p < bound. Our cut points (a proxy has no upstream rule):
# p in [0.4, 0.6) is a tie, p beyond 0.9 or below 0.1 (a reward gap over ln 9 = 2.2) a strong preference.
RM_LABEL_BINS = ((0.1, "A>>B"), (0.4, "A>B"), (0.6, "A=B"), (0.9, "B>A"), (math.inf, "B>>A"))


class Judge(Protocol):
    spec: str
    proxy: bool  # True for reward-model judges: not comparable to an LLM judge's numbers

    def alpaca_preferences(self, instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]) -> list[dict]:
        """Per pair: {"preference": 1 (output_1 better) .. 2 (output_2 better), "raw_completion": ...}."""
        ...

    def arena_games(self, questions: Sequence[str], answers_a: Sequence[str], answers_b: Sequence[str],
                    system_prompts: Sequence[str] | None = None, version: str = "v0.1") -> list[dict]:
        """Per game: {"judgment": text, "score": a label or None, "verdict_source": ...}. v2.0: per-question system
        prompts (ARENA_V2_SYSTEM_PROMPTS by category), upstream's v2.0 verdict regexes, one attempt."""
        ...


def parse_spec(spec: str) -> tuple[str, str]:
    kind, sep, target = spec.partition(":")
    if not sep or kind not in JUDGE_KINDS or not target:
        raise ConfigError(f"judge '{spec}' is not <kind>:<model>; use openai:<model>, local:<path|smollm2|tiny> or rm:<path>")
    return kind, target


def judge_slug(spec: str) -> str:
    """A file-name-safe id for a judge: results of different judges never share a file or a column."""
    kind, target = parse_spec(spec)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(target).name or target)
    if "/" in target:  # a path or hub id: its last part alone could collide (every run has a step_000100)
        name += "-" + hashlib.sha256(target.encode()).hexdigest()[:8]
    return f"{kind}-{name}"


def make_judge(spec: str, dtype: str = "auto", batch_size: int = 8, max_new_tokens: int = 4096) -> Judge:
    kind, target = parse_spec(spec)
    if kind == "openai":
        return OpenAIJudge(spec, target, max_new_tokens)
    if kind == "local":
        return LocalJudge(spec, target, dtype, batch_size, max_new_tokens)
    return RewardModelJudge(spec, target, batch_size)


def alpaca_messages(instruction: str, output_1: str, output_2: str) -> list[dict]:
    """alpaca-eval's own prompt for its weighted GPT-4-Turbo annotator, formatted by its own helpers."""
    import pandas as pd
    from alpaca_eval import utils

    template = (_alpaca_package() / ALPACA_TEMPLATE).read_text()
    df = pd.DataFrame([{"instruction": instruction, "output_1": output_1, "output_2": output_2}])
    prompts, _ = utils.make_prompts(df, template)
    return utils.prompt_to_chatml(prompts[0])


def alpaca_preference(top_logprobs: list[dict]) -> float:
    """alpaca-eval's `logprob_parser` (is_binarize=False): 2 - P(m) / (P(m) + P(M)); NaN when neither token is present."""
    from alpaca_eval.completion_parsers import logprob_parser

    completion = {"logprobs": {"content": [{"top_logprobs": top_logprobs}]}}
    return float(logprob_parser(completion, numerator_token="m", denominator_tokens=list(ALPACA_TOKENS), is_binarize=False)[0])


def arena_messages(question: str, answer_a: str, answer_b: str, system_prompt: str = ARENA_SYSTEM_PROMPT) -> list[dict]:
    user = ARENA_TEMPLATE.format(question=question, answer_a=answer_a, answer_b=answer_b)
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def arena_protocol(n: int, system_prompts: Sequence[str] | None, version: str):
    """(system prompts, verdict parser, judgment attempts) of an Arena-Hard version: v0.1 one prompt, at most one retry
    (`number_of_judgment_attempts`); v2.0 the prompt of each question's category, one call, `get_score`."""
    if version == "v0.1":
        return [ARENA_SYSTEM_PROMPT] * n, parse_verdict, 2
    from semibench.evals.scoring.arena_hard_v2 import get_score

    return list(system_prompts) if system_prompts is not None else [ARENA_SYSTEM_PROMPT] * n, get_score, 1


def _alpaca_package() -> Path:
    import importlib.util

    return Path(importlib.util.find_spec("alpaca_eval").origin).parent


class OpenAIJudge:
    """Chat completions over HTTP (stdlib only). Tested here against a local stub server; no real endpoint was reachable."""

    proxy = False
    max_attempts_http = 6
    max_workers = 8

    def __init__(self, spec: str, model: str, max_new_tokens: int):
        self.spec, self.model, self.max_new_tokens = spec, model, max_new_tokens
        self.base_url = os.environ.get("OPENAI_BASE_URL", OPENAI_DEFAULT_BASE_URL).rstrip("/")
        if self.base_url == OPENAI_DEFAULT_BASE_URL and not os.environ.get("OPENAI_API_KEY"):
            raise ConfigError(f"judge {spec} needs OPENAI_API_KEY in the environment (or OPENAI_BASE_URL for a local server)")

    def chat(self, body: dict) -> dict:
        """POST /chat/completions with retries on rate limits, server errors and dropped connections."""
        key = os.environ.get("OPENAI_API_KEY", "")
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        request = urllib.request.Request(f"{self.base_url}/chat/completions", json.dumps(body).encode(), headers, method="POST")
        for attempt in range(self.max_attempts_http):
            try:
                with urllib.request.urlopen(request, timeout=600) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code not in (408, 409, 429) and exc.code < 500 or attempt == self.max_attempts_http - 1:
                    detail = " ".join(exc.read().decode(errors="replace")[:300].split())
                    fix = "check OPENAI_API_KEY" if exc.code in (401, 403) else "check the judge model name and OPENAI_BASE_URL"
                    raise ConfigError(f"judge {self.spec}: {fix}: HTTP {exc.code} from {self.base_url}: {detail}") from None
            except (urllib.error.URLError, TimeoutError) as exc:
                # A refused connection is a server that is not there: retrying it only delays the one line.
                refused = isinstance(getattr(exc, "reason", None), ConnectionRefusedError)
                if refused or attempt == self.max_attempts_http - 1:
                    raise ConfigError(f"judge {self.spec}: check OPENAI_BASE_URL: cannot reach {self.base_url} ({getattr(exc, 'reason', exc)})") from None
            time.sleep(min(2**attempt, 30))
        raise AssertionError("unreachable")

    def _map(self, fn, items):
        with ThreadPoolExecutor(self.max_workers) as pool:
            return list(pool.map(fn, items))

    def alpaca_preferences(self, instructions, outputs_1, outputs_2) -> list[dict]:
        def one(args):
            messages = alpaca_messages(*args)
            # weighted_alpaca_eval_gpt4_turbo's completions_kwargs
            response = self.chat({"model": self.model, "messages": messages, "max_tokens": 1, "temperature": 1, "logprobs": True, "top_logprobs": 5})
            choice = response["choices"][0]
            return {"preference": alpaca_preference(choice["logprobs"]["content"][0]["top_logprobs"]), "raw_completion": choice}

        return self._map(one, list(zip(instructions, outputs_1, outputs_2)))

    def arena_games(self, questions, answers_a, answers_b, system_prompts=None, version="v0.1") -> list[dict]:
        prompts, parse, attempts = arena_protocol(len(questions), system_prompts, version)

        def one(args):
            conversation = arena_messages(*args)
            judgment = ""
            for attempt in range(attempts):  # v0.1: arena-hard's number_of_judgment_attempts; v2.0: one call
                body = {"model": self.model, "messages": conversation, "temperature": 0, "max_tokens": self.max_new_tokens}
                text = self.chat(body)["choices"][0]["message"]["content"] or ""
                judgment += "\n" + text
                label = parse(judgment)
                if VERDICT_PATTERN.search(judgment):
                    break  # upstream asks again only when there is no [[...]] at all
                conversation = conversation + [{"role": "assistant", "content": text}, {"role": "user", "content": ARENA_RETRY}]
            return {"judgment": judgment, "score": label, "verdict_source": "text" if label else None}

        return self._map(one, list(zip(questions, answers_a, answers_b, prompts)))


class LocalJudge:
    """A causal LM judge on semibench's HF engine: exact first-token log-probs, greedy judgments."""

    proxy = False

    def __init__(self, spec: str, path: str, dtype: str, batch_size: int, max_new_tokens: int):
        from semibench.engines.hf import HFGenerator
        from semibench.hardware import torch_dtype
        from semibench.models import resolve_model

        self.spec, self.batch_size, self.max_new_tokens = spec, batch_size, max_new_tokens
        self.generator = HFGenerator.from_pretrained(resolve_model(path), torch_dtype(dtype), batch_size)
        self.tokenizer = self.generator.tokenizer
        self.token_ids = {}
        for token in ALPACA_TOKENS:
            ids = self.tokenizer.encode(token, add_special_tokens=False)
            if len(ids) != 1:
                raise ConfigError(f"judge {spec}: '{token}' is not a single token in its tokenizer; AlpacaEval's protocol needs one")
            self.token_ids[token] = ids[0]

    def _encode(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _last_logprobs(self, rows: list[list[int]], keep: int):
        """[B, keep, V] log-probs of the last `keep` positions of left-padded rows (all rows end at the same position)."""
        import torch

        from semibench.engines.base import left_pad

        input_ids, attention = left_pad(rows, self.generator.pad_id)
        position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = self.generator.model(input_ids=input_ids, attention_mask=attention, position_ids=position_ids, logits_to_keep=keep).logits
        return logits.float().log_softmax(-1)

    def alpaca_preferences(self, instructions, outputs_1, outputs_2) -> list[dict]:
        encoded = [self._encode(alpaca_messages(*args)) for args in zip(instructions, outputs_1, outputs_2)]
        out = []
        for start in range(0, len(encoded), self.batch_size):
            for row in self._last_logprobs(encoded[start : start + self.batch_size], keep=1)[:, -1]:
                top = [{"token": t, "logprob": row[i].item()} for t, i in self.token_ids.items()]
                out.append({"preference": alpaca_preference(top), "raw_completion": {"logprobs": {"content": [{"top_logprobs": top}]}}})
        return out

    def arena_games(self, questions, answers_a, answers_b, system_prompts=None, version="v0.1") -> list[dict]:
        from semibench.engines.base import Sampling

        systems, parse, _ = arena_protocol(len(questions), system_prompts, version)
        prompts = [self._encode(arena_messages(*args)) for args in zip(questions, answers_a, answers_b, systems)]
        completions = self.generator.generate(prompts, 1, Sampling(temperature=0.0, max_new_tokens=self.max_new_tokens))
        games = []
        for prompt, completion in zip(prompts, completions):
            label = parse(completion.text)
            source = "text"
            if label is None:
                judged = list(completion.token_ids)
                if judged and judged[-1] in self.generator.eos_ids:  # the prefix continues the judge's own turn
                    judged = judged[:-1]
                label, source = self._forced_verdict(prompt + judged), "forced"
            games.append({"judgment": completion.text, "score": label, "verdict_source": source})
        return games

    def _forced_verdict(self, context: list[int]) -> str:
        """The label whose tokens are most likely after the judgment and 'My final verdict is: '."""
        context = context + self.tokenizer.encode(FORCED_VERDICT_PREFIX, add_special_tokens=False)
        continuations = [self.tokenizer.encode(f"[[{label}]]", add_special_tokens=False) for label in LABELS]
        keep = max(len(c) for c in continuations) + 1
        logps = self._last_logprobs([context + c for c in continuations], keep)  # [5, keep, V]
        scores = []
        for row, cont in enumerate(continuations):
            # Rows end together: token k of a continuation of length n sits at kept index keep - n + k and is
            # predicted by the index before it.
            scores.append(sum(logps[row, keep - len(cont) - 1 + k, t].item() for k, t in enumerate(cont)))
        return LABELS[max(range(len(LABELS)), key=scores.__getitem__)]


class RewardModelJudge:
    """Reward-model proxy judge: P(B better) = sigmoid(r(B) - r(A)), the Bradley-Terry reading of a score gap."""

    proxy = True

    def __init__(self, spec: str, path: str, batch_size: int):
        from semibench.models import resolve_model
        from semibench.rewards.reward_model import ScalarRewardModel

        self.spec = spec
        self.rm = ScalarRewardModel(resolve_model(path), batch_size=batch_size)

    def _p_second(self, prompts, first, second) -> list[tuple[float, float, float]]:
        rewards = self.rm(list(prompts) * 2, list(first) + list(second))
        r1, r2 = rewards[: len(first)], rewards[len(first) :]
        return [(a, b, 1 / (1 + math.exp(a - b))) for a, b in zip(r1, r2)]

    def alpaca_preferences(self, instructions, outputs_1, outputs_2) -> list[dict]:
        return [{"preference": 1 + p, "raw_completion": {"reward_1": a, "reward_2": b}} for a, b, p in self._p_second(instructions, outputs_1, outputs_2)]

    def arena_games(self, questions, answers_a, answers_b, system_prompts=None, version="v0.1") -> list[dict]:
        games = []  # a reward model reads no judge prompt: the same proxy for both versions
        for a, b, p in self._p_second(questions, answers_a, answers_b):
            label = next(lab for bound, lab in RM_LABEL_BINS if p < bound)
            games.append({"judgment": f"reward model: r(A) = {a:.4f}, r(B) = {b:.4f}, P(B better) = {p:.4f}", "score": label, "verdict_source": "reward_model"})
        return games
