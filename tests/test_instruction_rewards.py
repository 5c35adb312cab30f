"""The IF rewards against the real models they run on: the judge on the tiny LM, the RM on a tiny seq-cls Llama."""

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

from semibench.datafiles import read_spec
from semibench.models import resolve_model
from semibench.rewards.judge import ANSWER_PREFIX, PointwiseJudge, common_prefix_length, instruction_groups
from semibench.rewards.reward_model import ScalarRewardModel

TEMPLATE = read_spec("templates")["judge"]["pointwise"]


@pytest.fixture(scope="module")
def judge():
    return PointwiseJudge("tiny", TEMPLATE, batch_size=3, dtype=torch.float32)


def test_judge_reward_is_expected_rating_from_score_token_logprobs(judge):
    instructions = ["Write a haiku about the moon.", "List three fruits.", "Say hi.", "Explain rain."]
    responses = ["Moon over water", "apple, pear, plum", "hi", "Clouds get heavy and water falls, because " * 5]
    scores = judge(instructions, responses)
    assert all(0.0 <= s <= 1.0 for s in scores)
    # Recompute one by hand, unbatched: softmax over the nine rating tokens, E[rating], rescaled.
    expected = _by_hand(judge, instructions[3], responses[3])
    assert scores[3] == pytest.approx(expected, abs=1e-5)  # batching with padding changes nothing
    assert len(set(round(s, 6) for s in scores)) > 1  # graded, not a constant


def _by_hand(judge, instruction: str, response: str) -> float:
    tok = judge.tokenizer
    text = tok.apply_chat_template([{"role": "user", "content": TEMPLATE.format(instruction=instruction, response=response)}], tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tok.encode(text + ANSWER_PREFIX, add_special_tokens=False)])
    with torch.no_grad():
        logits = judge.model(input_ids=ids).logits[0, -1]
    probs = logits[judge.rating_ids].softmax(-1)
    return ((probs * torch.arange(1, 10)).sum().item() - 1) / 8


def test_judge_shares_a_prompts_tokens_and_scores_as_if_it_did_not(judge):
    """A prompt's samples run their shared start once (KV repeated, suffixes padded in the middle);
    every score equals the row's own unbatched forward, whatever its length, order or group."""
    instructions = ["Explain rain."] * 4 + ["Say hi."] * 2 + ["Explain rain."]
    responses = ["Clouds.", "Water vapour condenses into droplets that grow and fall. " * 3, "rain", "", "hi", "hello there", "Clouds."]
    scores = judge(instructions, responses)  # batch_size 3: "Explain rain." runs as groups of 3 and 2
    for instruction, response, score in zip(instructions, responses, scores):
        assert score == pytest.approx(_by_hand(judge, instruction, response), abs=1e-5)
    assert scores[0] == pytest.approx(scores[6], abs=1e-6) and scores[0] != pytest.approx(scores[1], abs=1e-4)


def test_instruction_groups_and_common_prefix():
    assert instruction_groups(["a", "b", "a", "a", "b"], 2) == [[0, 2], [3], [1, 4]]
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([[5, 1], [6, 1]]) == 0


def test_judge_truncates_from_the_left_and_counts(judge):
    small = PointwiseJudge("tiny", TEMPLATE, max_length=64, dtype=torch.float32)
    [score] = small(["Say hi."], ["word " * 500])
    assert small.num_truncated == 1 and 0.0 <= score <= 1.0


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    path = tmp_path_factory.mktemp("rm")
    tok = AutoTokenizer.from_pretrained(resolve_model("tiny"))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=1,
                      num_key_value_heads=1, num_labels=1, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _manual_score(path, ids):
    model = LlamaForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        hidden = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
        return model.score(hidden).item()


def test_reward_model_reads_score_at_appended_cls_token(tiny_rm):
    rm = ScalarRewardModel(str(tiny_rm), cls_token="<|endoftext|>", dtype=torch.float32)
    instructions, responses = ["Say hi.", "Write a long poem."], ["hi", "roses are red " * 20]
    scores = rm(instructions, responses)
    tok = rm.tokenizer
    for instruction, response, score in zip(instructions, responses, scores):
        ids = list(tok.apply_chat_template([{"role": "user", "content": instruction}, {"role": "assistant", "content": response}], tokenize=True, return_dict=False))
        ids.append(tok.convert_tokens_to_ids("<|endoftext|>"))
        assert score == pytest.approx(_manual_score(tiny_rm, ids), abs=1e-5)
    assert scores[0] != scores[1]


def test_reward_model_last_token_and_truncation_count(tiny_rm):
    rm = ScalarRewardModel(str(tiny_rm), max_length=16, dtype=torch.float32)
    with pytest.warns(UserWarning, match="1 inputs truncated"):
        [short, long] = rm(["Hi"], ["ok"]) + rm(["Hi"], ["word " * 100])
    assert rm.num_truncated == 1
    tok = rm.tokenizer
    ids = list(tok.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "word " * 100}], tokenize=True, return_dict=False))[:16]
    assert long == pytest.approx(_manual_score(tiny_rm, ids), abs=1e-5)
