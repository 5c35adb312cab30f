"""The HF engine's sampling contract: greedy is deterministic, stop strings cut text and tokens alike; it
generates on the device the trainer hands it."""

import pytest
import torch

from semibench.engines.base import Sampling, cut_at_stop
from semibench.engines.hf import HFGenerator
from semibench.models import load_tokenizer, resolve_model


def test_cut_at_stop_trims_text_and_tokens():
    tok = load_tokenizer(resolve_model("tiny"))
    ids = tok.encode("The answer is 7.\nQuestion: next one", add_special_tokens=False)
    kept, text, stopped = cut_at_stop(tok, ids, ("Question:", "never"))
    assert stopped and text == "The answer is 7.\n"
    assert tok.decode(kept).startswith(text) and len(kept) < len(ids)
    assert not tok.decode(kept[:-1]).startswith(text)  # the shortest token prefix that covers the text
    assert cut_at_stop(tok, ids, ("absent",)) == (ids, tok.decode(ids), False)


def test_greedy_is_deterministic_and_matches_hf_generate():
    path = resolve_model("tiny")
    gen = HFGenerator.from_pretrained(path, torch.float32)
    prompt = gen.tokenizer.apply_chat_template([{"role": "user", "content": "Calculate 3 + 4. The answer is"}], add_generation_prompt=True, return_dict=False)
    greedy = Sampling(temperature=0.0, max_new_tokens=8)
    a = gen.generate([prompt], 2, greedy)
    assert a[0].token_ids == a[1].token_ids  # two greedy samples of one prompt agree
    expected = gen.model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=8, eos_token_id=gen.eos_ids, pad_token_id=gen.pad_id)
    reference = expected[0, len(prompt):].tolist()
    assert list(a[0].token_ids) == reference[: len(a[0].token_ids)]


def test_hf_sync_of_an_incomplete_state_dict_is_a_weight_sync_error():
    import pytest

    from semibench.sync import WeightSyncError

    gen = HFGenerator.from_pretrained(resolve_model("tiny"), torch.float32)
    state = dict(gen.model.state_dict())
    state.pop(next(iter(state)))
    with pytest.raises(WeightSyncError, match="version 3 failed: 1 tensors missing"):
        gen.load_weights(3, state)
    assert gen.version == 0


def test_the_trainer_hands_its_device_to_the_hf_generator(monkeypatch):
    """Under torchrun on a GPU the HF engine must generate there, not on the host's CPU."""
    from semibench import config
    from semibench.training import train

    seen = {}
    monkeypatch.setattr(train, "load_generator", lambda *a, **kw: seen.update(kw))
    cfg = config.resolve("tiny", {"train.engine": "hf"})
    train.build_generator(cfg, train.Models(None, None, None, None, "unused"), torch.device("meta"))
    assert seen["device"] == torch.device("meta")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_hf_generator_generates_on_the_gpu():
    gen = HFGenerator.from_pretrained("tiny", torch.bfloat16, device="cuda")
    assert all(p.device.type == "cuda" for p in gen.model.parameters())
    out = gen.generate([[1, 2, 3]], 2, Sampling(max_new_tokens=4, seed=0))
    assert len(out) == 2 and all(1 <= len(c.token_ids) <= 4 for c in out)
