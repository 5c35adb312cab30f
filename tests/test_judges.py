"""Judges: the OpenAI-compatible protocol against a local stub server, the local judge's log-probs against a direct
forward pass, the reward-model proxy, alpaca-eval's order randomisation, and AlpacaEval / Arena-Hard end to end.

The real OpenAI endpoint is never contacted (tests have no network): only the request shape and the parsing are
tested, against a stub that speaks the chat-completions format.
"""

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from typer.testing import CliRunner

from semibench.cli import app
from semibench.config import ConfigError
from semibench.evals import judges
from semibench.evals.evaluate import evaluate
from semibench.evals.pairwise import is_switched
from semibench.evals.settings import EvalSettings
from semibench.models import resolve_model

SECRET = "sk-test-never-written-7f3a"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _hf_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture
def data_dir(tmp_path):
    """Short AlpacaEval and Arena-Hard files in the upstream layouts (the real ones hold long GPT-4 answers)."""
    root = tmp_path / "data"
    (root / "alpaca_eval").mkdir(parents=True)
    refs = [{"dataset": "t", "instruction": f"Name a colour number {i}.", "output": f"Blue {i}.", "generator": "gpt4_1106_preview"} for i in range(4)]
    (root / "alpaca_eval" / "reference_outputs_gpt4_1106_preview.json").write_text(json.dumps(refs))
    arena = root / "arena-hard-v0.1"
    (arena / "model_answer").mkdir(parents=True)
    questions = [{"uid": f"q{i}", "category": "arena-hard-v0.1", "cluster": "c", "prompt": f"Say hello {i} times."} for i in range(2)]
    (arena / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    answers = [{"uid": f"q{i}", "model": "gpt-4-0314", "messages": [{"role": "user", "content": q["prompt"]}, {"role": "assistant", "content": {"answer": "Hello."}}]}
               for i, q in enumerate(questions)]
    (arena / "model_answer" / "gpt-4-0314.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    return root


FAST = dict(engine="hf", max_new_tokens=8, dtype="float32", batch_size=4, judge_max_new_tokens=16)


# ---------------------------------------------------------------------------------------------- spec


def test_spec_parsing_and_slugs():
    assert judges.parse_spec("openai:gpt-4o") == ("openai", "gpt-4o")
    assert judges.judge_slug("openai:gpt-4o") == "openai-gpt-4o"
    assert judges.judge_slug("local:smollm2") == "local-smollm2"
    assert judges.judge_slug("rm:/a/b/rm") != judges.judge_slug("rm:/c/b/rm")
    for bad in ("gpt-4o", "api:gpt-4o", "local:"):
        with pytest.raises(ConfigError, match="openai:<model>"):
            judges.parse_spec(bad)


def test_switch_matches_alpaca_eval_processor():
    """Our coin is alpaca-eval's own RandomSwitchTwoColumnsProcessor (as PairwiseAnnotator configures it)."""
    import pandas as pd
    from alpaca_eval.processors import RandomSwitchTwoColumnsProcessor

    instructions = [f"instruction {i}" for i in range(40)]
    df = pd.DataFrame({"instruction": instructions, "output_1": "a", "output_2": "b"})
    processor = RandomSwitchTwoColumnsProcessor(two_columns_to_switch=["output_1", "output_2"], random_seed_columns=["instruction"],
                                                _switch_column="is_switched_outputs")
    upstream = processor.preprocess(df)["is_switched_outputs"].tolist()
    assert [is_switched(i) for i in instructions] == upstream and 5 < sum(upstream) < 35


def test_alpaca_prompt_is_alpaca_evals():
    messages = judges.alpaca_messages("Say hi.", "Hi!", "Hello!")
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert '"instruction": """Say hi."""' in user and '"output": """Hi!"""' in user and '"output": """Hello!"""' in user
    assert user.index('"model_identifier": "m"') < user.index("Hi!") < user.index('"model_identifier": "M"') < user.index("Hello!")
    # alpaca-eval's logprob_parser: preference = 2 - P(m) / (P(m) + P(M)), other tokens ignored
    top = [{"token": "m", "logprob": math.log(0.2)}, {"token": "M", "logprob": math.log(0.6)}, {"token": "The", "logprob": math.log(0.2)}]
    assert judges.alpaca_preference(top) == pytest.approx(2 - 0.2 / 0.8)


# ---------------------------------------------------------------------------------------------- openai stub


class _Stub(BaseHTTPRequestHandler):
    requests: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if body.get("max_tokens") == 1:  # AlpacaEval: one token with its top log-probs
            top = [{"token": "M", "logprob": math.log(0.75)}, {"token": "m", "logprob": math.log(0.25)}]
            choice = {"index": 0, "message": {"role": "assistant", "content": "M"}, "logprobs": {"content": [{"token": "M", "logprob": top[0]["logprob"], "top_logprobs": top}]}}
        else:  # Arena-Hard: no verdict at first, one after upstream's "continue your judgment" turn
            retry = body["messages"][-1]["content"] == judges.ARENA_RETRY
            choice = {"index": 0, "message": {"role": "assistant", "content": "So: [[B>A]]" if retry else "Both answers greet the user."}}
        payload = json.dumps({"id": "x", "object": "chat.completion", "choices": [choice]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def openai_stub(monkeypatch):
    _Stub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    yield _Stub.requests
    server.shutdown()


def test_openai_judge_request_shape_and_scores(tmp_path, data_dir, openai_stub):
    settings = EvalSettings(judge="openai:stub-judge", data_dir=data_dir, **FAST)
    results = evaluate("tiny", ["alpaca_eval", "arena_hard"], settings, out_dir=tmp_path / "out")

    alpaca = [r for r in openai_stub if r["body"].get("max_tokens") == 1]
    assert len(alpaca) == 4
    for r in alpaca:
        assert r["path"] == "/v1/chat/completions" and r["auth"] == f"Bearer {SECRET}"
        body = r["body"]
        assert (body["model"], body["temperature"], body["logprobs"], body["top_logprobs"]) == ("stub-judge", 1, True, 5)
        assert [m["role"] for m in body["messages"]] == ["system", "user"] and "## Best Model Identifier" in body["messages"][1]["content"]
    # The stub always gives P(m) = 0.25 for the output shown first: the model wins 0.75 unless alpaca-eval's coin showed it first.
    expected = [0.25 if is_switched(f"Name a colour number {i}.") else 0.75 for i in range(4)]
    result = results["alpaca_eval"]
    assert result["score"] == pytest.approx(100 * sum(expected) / 4) and result["primary_metric"] == "win_rate"
    assert result["judge"] == "openai:stub-judge" and "length-controlled" in result["notes"][0]

    arena = [r for r in openai_stub if r["body"].get("max_tokens") != 1]
    assert len(arena) == 2 * 2 * 2  # 2 questions x 2 games x 2 attempts
    first = [r["body"] for r in arena if len(r["body"]["messages"]) == 2]
    assert all(b["temperature"] == 0 and b["max_tokens"] == 16 and b["messages"][0]["content"] == judges.ARENA_SYSTEM_PROMPT for b in first)
    games = sorted(b["messages"][1]["content"].index("Hello.") < b["messages"][1]["content"].index("<|The Start of Assistant B") for b in first)
    assert games == [False, False, True, True]  # the baseline is A in one game per question, B in the other
    # [[B>A]] in both games: the model wins game 1 (it is B) and loses game 2 (it is A): exactly 50%.
    assert results["arena_hard"]["score"] == pytest.approx(50) and results["arena_hard"]["metrics"]["skipped_games"] == 0

    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(), path


def test_openai_judge_needs_a_key_for_the_real_api(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        judges.make_judge("openai:gpt-4o")


# ---------------------------------------------------------------------------------------------- local judge


@pytest.fixture(scope="module")
def tiny_judge():
    return judges.make_judge("local:tiny", dtype="float32", batch_size=3, max_new_tokens=8)


def _direct_logprobs(judge, ids):
    with torch.no_grad():
        return judge.generator.model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)


def test_local_judge_alpaca_preference_is_its_first_token_distribution(tiny_judge):
    triples = [("Say hi.", "Hi!", "Hello there, friend!"), ("Count to three, please.", "1 2 3", "one"), ("x", "y", "z")]
    got = tiny_judge.alpaca_preferences(*zip(*triples))  # one left-padded batch
    for (instruction, a, b), verdict in zip(triples, got):
        ids = tiny_judge._encode(judges.alpaca_messages(instruction, a, b))
        logps = _direct_logprobs(tiny_judge, ids)[-1]
        p_m, p_big_m = (logps[tiny_judge.token_ids[t]].exp().item() for t in ("m", "M"))
        assert verdict["preference"] == pytest.approx(2 - p_m / (p_m + p_big_m), abs=1e-5)


def test_local_judge_forced_verdict_is_the_most_likely_label(tiny_judge):
    context = tiny_judge._encode(judges.arena_messages("Say hello.", "Hello.", "Hi."))
    label = tiny_judge._forced_verdict(context)
    prefix = context + tiny_judge.tokenizer.encode(judges.FORCED_VERDICT_PREFIX, add_special_tokens=False)
    scores = {}
    for candidate in judges.LABELS:
        cont = tiny_judge.tokenizer.encode(f"[[{candidate}]]", add_special_tokens=False)
        logps = _direct_logprobs(tiny_judge, prefix + cont)
        scores[candidate] = sum(logps[len(prefix) - 1 + k, t].item() for k, t in enumerate(cont))
    assert label == max(scores, key=scores.get)
    games = tiny_judge.arena_games(["Say hello."], ["Hello."], ["Hi."])
    assert games[0]["score"] in judges.LABELS and games[0]["verdict_source"] in ("text", "forced")


def test_alpaca_and_arena_end_to_end_with_a_local_judge(tmp_path, data_dir):
    settings = EvalSettings(judge="local:tiny", data_dir=data_dir, **FAST)
    results = evaluate("tiny", ["alpaca_eval", "arena_hard"], settings, out_dir=tmp_path / "out")
    out = tmp_path / "out"
    alpaca, arena = results["alpaca_eval"], results["arena_hard"]
    assert (out / "alpaca_eval--local-tiny.json").is_file() and (out / "arena_hard--local-tiny.json").is_file()
    assert (out / "alpaca_eval.samples.jsonl").is_file()  # generations, shared by every judge
    assert alpaca["n"] == 4 and 0 <= alpaca["score"] <= 100 and alpaca["judge_proxy"] is False
    # `semibench score alpaca_eval` on the written annotations gives the same numbers.
    scored = runner.invoke(app, ["score", "alpaca_eval", "--annotations", str(out / "alpaca_eval--local-tiny.annotations.json"), "--json"])
    assert scored.exit_code == 0, scored.output
    again = json.loads(scored.stdout)
    assert again["win_rate"] == pytest.approx(alpaca["score"]) and again["standard_error"] == pytest.approx(alpaca["stderr"])
    # Arena: every game has a verdict (forced if the judge wrote none); `semibench score arena_hard` agrees.
    assert arena["metrics"]["games"] == 4 and arena["metrics"]["skipped_games"] == 0
    assert arena["ci_lower"] <= arena["score"] <= arena["ci_upper"] and arena["stderr"] is None
    scored = runner.invoke(app, ["score", "arena_hard", "--judgments", str(out / "arena_hard--local-tiny.judgments"), "--json"])
    assert json.loads(scored.stdout)["tiny"]["score"] == pytest.approx(arena["score"])


def test_second_judge_reuses_generations_and_gets_its_own_files(tmp_path, data_dir, monkeypatch):
    from semibench.engines.hf import HFGenerator

    evaluate("tiny", ["alpaca_eval"], EvalSettings(judge="local:tiny", data_dir=data_dir, **FAST), out_dir=tmp_path / "out")
    real = HFGenerator.generate
    generated = []
    monkeypatch.setattr(HFGenerator, "generate", lambda self, prompts, n, sampling: generated.append(len(prompts)) or real(self, prompts, n, sampling))
    rm_dir = _tiny_reward_model(tmp_path)
    result = evaluate("tiny", ["alpaca_eval"], EvalSettings(judge=f"rm:{rm_dir}", data_dir=data_dir, **FAST), out_dir=tmp_path / "out")["alpaca_eval"]
    assert generated == []  # the rm judge generates nothing, and the answers came from disk
    stems = sorted(p.name for p in (tmp_path / "out").glob("alpaca_eval--*.json") if "annotations" not in p.name)
    assert len(stems) == 2 and result["judge_proxy"] is True


# ---------------------------------------------------------------------------------------------- reward-model proxy


def _tiny_reward_model(tmp_path):
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    path = tmp_path / "tiny-rm"
    if not path.exists():
        source = resolve_model("tiny")
        cfg = AutoConfig.from_pretrained(source)
        cfg.num_labels = 1
        torch.manual_seed(0)
        LlamaForSequenceClassification(cfg).save_pretrained(path)
        AutoTokenizer.from_pretrained(source).save_pretrained(path)
    return path


def test_reward_model_judge_is_bradley_terry_on_the_score_gap(tmp_path):
    from semibench.rewards.reward_model import ScalarRewardModel

    path = _tiny_reward_model(tmp_path)
    judge = judges.make_judge(f"rm:{path}")
    prompts, first, second = ["Say hi.", "Add 2 and 2."], ["Hi.", "4"], ["Hello, how are you today?", "five"]
    rm = ScalarRewardModel(str(path))
    r1, r2 = rm(prompts, first), rm(prompts, second)
    prefs = judge.alpaca_preferences(prompts, first, second)
    for a, b, verdict in zip(r1, r2, prefs):
        assert verdict["preference"] == pytest.approx(1 + 1 / (1 + math.exp(a - b)), abs=1e-5)
    games = judge.arena_games(prompts, first, second)
    for a, b, game in zip(r1, r2, games):
        p = 1 / (1 + math.exp(a - b))
        assert game["score"] == next(label for bound, label in judges.RM_LABEL_BINS if p < bound)
    assert judge.proxy is True
