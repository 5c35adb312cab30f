"""Athene-RM-style scoring on a tiny locally built checkpoint: Llama backbone + bias-free `v_head`,
CLS token appended to the chat template, score read at the last CLS (paper.md §1.8)."""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, LlamaConfig, LlamaModel

from semibench.config import ConfigError, RewardConfig
from semibench.models import resolve_model
from semibench.rewards import Rewarder, length_normalized_reward
from semibench.rewards.reward_model import ScalarRewardModel

CLS = "<|reserved_special_token_1|>"  # Athene-RM-8B's CLS token (id 128003 in its tokenizer)


@pytest.fixture(scope="module")
def athene(tmp_path_factory):
    """Saved the way Athene-RM-8B is: `model.*` backbone weights + `v_head.weight`, no modeling code."""
    path = tmp_path_factory.mktemp("athene")
    tok = AutoTokenizer.from_pretrained(resolve_model("tiny"))
    tok.add_special_tokens({"cls_token": CLS})
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=1,
                      num_key_value_heads=1, pad_token_id=tok.pad_token_id, architectures=["AtheneForSequenceClassification"])
    torch.manual_seed(0)
    backbone = LlamaModel(cfg)
    state = {f"model.{k}": v.contiguous() for k, v in backbone.state_dict().items()}
    state["v_head.weight"] = torch.randn(1, cfg.hidden_size)
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    cfg.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def manual_scores(path, ids: list[int]) -> torch.Tensor:
    """v_head applied at every position of one unpadded sequence."""
    from safetensors import safe_open

    backbone = LlamaModel.from_pretrained(path, dtype=torch.float32).eval()
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        v_head = f.get_tensor("v_head.weight")
    with torch.no_grad():
        hidden = backbone(input_ids=torch.tensor([ids])).last_hidden_state[0]
    return hidden @ v_head[0]


def test_score_is_v_head_at_last_cls_position(athene):
    rm = ScalarRewardModel(str(athene), cls_token=CLS, batch_size=2, dtype=torch.float32, device="cpu")
    # Response 0 contains the CLS text itself: the score must come from the appended (last) one.
    # Different lengths in one batch, so a pad position or a wrong row offset would show.
    instructions = ["Say hi.", "Write a poem.", "Explain rain."]
    responses = [f"hi {CLS} there", "roses are red " * 12, "Clouds get heavy."]
    scores = rm(instructions, responses)
    cls_id = rm.tokenizer.convert_tokens_to_ids(CLS)
    for instruction, response, score in zip(instructions, responses, scores):
        text = rm.tokenizer.apply_chat_template([{"role": "user", "content": instruction}, {"role": "assistant", "content": response}], tokenize=False)
        ids = rm.tokenizer(text + CLS)["input_ids"]
        assert ids[-1] == cls_id
        per_position = manual_scores(athene, ids)
        assert score == pytest.approx(per_position[-1].item(), abs=1e-5)
        assert abs(score - per_position[-2].item()) > 1e-3  # the token before CLS gives another number
    first_ids = rm.encode(instructions[0], responses[0])
    cls_positions = [i for i, t in enumerate(first_ids) if t == cls_id]
    assert len(cls_positions) == 2  # the response's CLS and the appended one
    assert abs(scores[0] - manual_scores(athene, first_ids)[cls_positions[0]].item()) > 1e-3  # first CLS is wrong
    assert len(set(round(s, 5) for s in scores)) == 3


def test_padding_never_counts_even_when_pad_is_the_cls_token(athene):
    rm = ScalarRewardModel(str(athene), cls_token=CLS, batch_size=3, dtype=torch.float32, device="cpu")
    inputs = (["a", "b", "c"], ["short", "a much longer answer " * 6, "mid length answer"])
    alone = [rm([i], [r])[0] for i, r in zip(*inputs)]  # batch of one: no padding at all
    assert rm(*inputs) == pytest.approx(alone, abs=1e-5)
    rm.pad_id = rm.cls_id  # some tokenizers pad with a special token; padded CLS must not be read
    assert rm(*inputs) == pytest.approx(alone, abs=1e-5)


def test_truncation_keeps_the_cls_token_and_counts(athene):
    rm = ScalarRewardModel(str(athene), cls_token=CLS, max_length=24, dtype=torch.float32, device="cpu")
    with pytest.warns(UserWarning, match="1 inputs truncated to 24"):
        short, long = rm(["Hi", "Hi"], ["ok", "word " * 100])
    ids = rm.encode("Hi", "word " * 100)
    assert len(ids) == 24 and ids[-1] == rm.cls_id and rm.num_truncated == 2  # one more from this encode
    assert long == pytest.approx(manual_scores(athene, ids)[-1].item(), abs=1e-5)


def test_rewarder_builds_athene_from_config(athene):
    # The dtype pinned: `auto` is bf16 on AVX512-BF16 and fp32 on AVX2, and the two score differently.
    cfg = RewardConfig(if_reward="reward_model", reward_model=str(athene), rm_cls_token=CLS, rm_device="cpu", rm_batch_size=2, dtype="float32")
    rewarder = Rewarder(cfg, ["if"])
    direct = ScalarRewardModel(str(athene), cls_token=CLS, dtype=torch.float32, device="cpu")  # the Rewarder's dtype
    got = rewarder(["if", "if"], ["Say hi.", "Explain rain."], [None, None], ["hi", "Clouds get heavy."])
    assert got == direct(["Say hi.", "Explain rain."], ["hi", "Clouds get heavy."])
    assert rewarder.instruction.device == torch.device("cpu") and rewarder.instruction.batch_size == 2


def test_bad_cls_token_and_two_label_head_are_one_line_errors(athene, tmp_path):
    with pytest.raises(ConfigError, match="not a single token"):
        ScalarRewardModel(str(athene), cls_token="<|no_such_token|>", dtype=torch.float32, device="cpu")
    # Without a v_head a 2-label classifier is not a scalar RM.
    from transformers import LlamaForSequenceClassification

    cfg = json.loads((athene / "config.json").read_text())
    two = LlamaForSequenceClassification(LlamaConfig(**{k: v for k, v in cfg.items() if k in LlamaConfig().to_dict()}, num_labels=2))
    two.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(athene).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="has 2 outputs and no v_head"):
        ScalarRewardModel(str(tmp_path), dtype=torch.float32, device="cpu")


def test_length_normalized_reward_is_ratio_of_means():
    assert length_normalized_reward([1.0, -2.0, 4.0], [10, 20, 30]) == pytest.approx(1.0 / 20)
    assert length_normalized_reward([3.0], [0]) == 3.0  # an empty rollout divides by 1, not 0
    with pytest.raises(ValueError, match="one length per reward"):
        length_normalized_reward([1.0], [])
