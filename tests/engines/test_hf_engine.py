import math

import pytest
import torch

from agentrl.engines.base import Engine, SamplingParams
from agentrl.engines.hf import TransformersEngine
from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.engines.logprobs import process_logits, sampling_logprobs, teacher_forced_logprobs
from agentrl.errors import ConfigError, ModelLoadError
from agentrl.models.tiny import SYSTEM_XML
from helpers import chat_prompts


@pytest.fixture(scope="module")
def engine(tiny_chatml):
    return TransformersEngine(load_model(str(tiny_chatml)), load_tokenizer(str(tiny_chatml)), max_batch_size=4)


def prompts(engine, n=6):
    return chat_prompts(engine.tokenizer, [f"What is {i} + {i * 7}?" for i in range(n)], SYSTEM_XML)


def test_is_an_engine(engine):
    assert isinstance(engine, Engine)


def test_process_logits_filters():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    assert torch.isinf(process_logits(logits, 1.0, top_k=2)).tolist() == [[False, False, True, True]]
    probs = logits.softmax(-1)[0]  # 0.64, 0.24, 0.09, 0.03
    keep = ~torch.isinf(process_logits(logits, 1.0, top_p=0.7))
    assert keep.tolist() == [[True, True, False, False]] and probs[0] < 0.7
    assert torch.allclose(sampling_logprobs(logits, 2.0), torch.log_softmax(logits / 2.0, -1))
    filtered = sampling_logprobs(logits, 1.0, top_k=2)
    assert math.isclose(filtered[0, :2].exp().sum().item(), 1.0, rel_tol=1e-6)


def test_generate_shapes_and_finish_reasons(engine):
    params = SamplingParams(max_new_tokens=12, seed=0)
    out = engine.generate(prompts(engine), params)
    assert len(out) == 6
    for c in out:
        assert 1 <= len(c.token_ids) <= 12 and len(c.logprobs) == len(c.token_ids)
        assert all(lp <= 0 for lp in c.logprobs)
        assert c.finish_reason in ("stop", "length")
        if c.finish_reason == "stop":
            assert c.token_ids[-1] in engine.eos_token_ids or c.stop_reason
        else:
            assert len(c.token_ids) == 12


def test_seed_reproduces_and_differs(engine):
    p = prompts(engine)
    a = engine.generate(p, SamplingParams(max_new_tokens=16, seed=1))
    b = engine.generate(p, SamplingParams(max_new_tokens=16, seed=1))
    c = engine.generate(p, SamplingParams(max_new_tokens=16, seed=2))
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


def test_batched_equals_one_at_a_time(engine):
    """Left padding and row pruning must not change what a row sees."""
    p = prompts(engine)
    p[2] = p[2] + p[2][-4:]  # different lengths in one batch
    greedy = SamplingParams(temperature=0, max_new_tokens=10)
    batched = engine.generate(p, greedy)
    for prompt, got in zip(p, batched, strict=True):
        alone = engine.generate([prompt], greedy)[0]
        assert alone.token_ids == got.token_ids
        assert max(abs(a - b) for a, b in zip(alone.logprobs, got.logprobs, strict=True)) < 1e-4


def test_identical_prompts_share_a_prefill_and_sample_apart(engine):
    """A group's episodes start from one prompt: it is prefilled once, yet each row samples on
    its own, and greedy rows equal the prompt decoded alone."""
    p = prompts(engine, 2)
    rows = [p[0]] * 3 + [p[1]]
    greedy = engine.generate(rows, SamplingParams(temperature=0, max_new_tokens=10))
    for prompt, got in zip(rows, greedy, strict=True):
        alone = engine.generate([prompt], SamplingParams(temperature=0, max_new_tokens=10))[0]
        assert alone.token_ids == got.token_ids
        assert max(abs(a - b) for a, b in zip(alone.logprobs, got.logprobs, strict=True)) < 1e-4
    sampled = engine.generate([p[0]] * 4, SamplingParams(max_new_tokens=16, seed=3))
    assert len({tuple(c.token_ids) for c in sampled}) > 1, "copies of a prompt sample independently"


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.0, 0, 1.0), (0.7, 5, 0.9), (0.0, 0, 1.0)])
def test_logprobs_match_teacher_forcing(engine, temperature, top_k, top_p):
    p = prompts(engine)
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, max_new_tokens=12, seed=3)
    out = engine.generate(p, params)
    forced = teacher_forced_logprobs(
        engine.model, [q + c.token_ids for q, c in zip(p, out, strict=True)], temperature, top_k, top_p
    )
    for q, c, f in zip(p, out, forced, strict=True):
        diffs = [abs(a - b) for a, b in zip(c.logprobs, f[len(q) :], strict=True)]
        assert max(diffs) <= 1e-4


def test_stop_strings_keep_whole_tokens(engine):
    params = SamplingParams(max_new_tokens=24, stop=("</calculator>",), seed=0)
    out = engine.generate(prompts(engine, 12), params)
    stopped = [c for c in out if c.stop_reason == "</calculator>"]
    assert stopped, "the warm-started model should call the calculator"
    for c in stopped:
        text = engine.tokenizer.decode(c.token_ids)
        assert "</calculator>" in text and "</calculator>" not in engine.tokenizer.decode(c.token_ids[:-1])


def test_per_prompt_limits_and_ignore_eos(engine):
    p = prompts(engine, 3)
    out = engine.generate(p, SamplingParams(max_new_tokens=20, ignore_eos=True, seed=0), max_new_tokens=[5, 20, 0])
    assert [len(c.token_ids) for c in out] == [5, 20, 0]
    assert [c.finish_reason for c in out] == ["length", "length", "length"]


def test_update_weights_changes_outputs_and_version(tiny_chatml, tiny_random):
    tok = load_tokenizer(str(tiny_chatml))
    engine = TransformersEngine(load_model(str(tiny_chatml)), tok)
    p = prompts(engine, 2)
    greedy = SamplingParams(temperature=0, max_new_tokens=8, ignore_eos=True)
    before = engine.generate(p, greedy)
    other = load_model(str(tiny_random))
    engine.update_weights(other.state_dict(), version=7)
    after = engine.generate(p, greedy)
    assert engine.policy_version == 7 and all(c.policy_version == 7 for c in after)
    fresh = TransformersEngine(other, tok).generate(p, greedy)
    assert [c.token_ids for c in after] == [c.token_ids for c in fresh] != [c.token_ids for c in before]


def test_bad_sampling_values():
    with pytest.raises(ConfigError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ConfigError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0)


def test_loading_errors(tmp_path, tiny_random):
    with pytest.raises(ModelLoadError, match="not a Hugging Face model directory"):
        load_model(str(tmp_path))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(str(tmp_path))
    tok = load_tokenizer(str(tiny_random))
    tok.chat_template = None
    bare = tmp_path / "bare"
    tok.save_pretrained(bare)
    (bare / "config.json").write_text("{}")
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="no chat template"):
        load_tokenizer(str(bare))


def test_the_kv_cache_goes_by_the_name_the_models_forward_gives_it():
    from agentrl.engines.hf import cache_kwarg

    class Renamed(torch.nn.Module):  # transformers >= 5.24
        def forward(self, input_ids, cache=None, past_key_values=None): ...

    class Before(torch.nn.Module):  # transformers < 5.24
        def forward(self, input_ids, past_key_values=None): ...

    assert cache_kwarg(Renamed()) == "cache"
    assert cache_kwarg(Before()) == "past_key_values"
