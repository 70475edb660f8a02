"""LoRA (agentrl.learner.lora) through peft on the tiny model, in float64: the update is a
hand-written LoRA step, only the adapters change, the reference is the base model with the
adapters off, the engines' merged weights compute what the adapted model computes, and the
checkpoint holds the adapter in peft's format."""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch

from agentrl.algos import make
from agentrl.batch import TokenBatch
from agentrl.engines.loading import load_model
from agentrl.errors import CheckpointError, ConfigError, ModelLoadError
from agentrl.learner import LearnerConfig, TorchLearner, lora
from agentrl.learner.forward import forward_tokens

peft = pytest.importorskip("peft")

RANK, ALPHA, LR = 4, 8.0, 1e-2
OPTIONS = lora.LoraConfig(rank=RANK, alpha=ALPHA)


def adapted(path, config: lora.LoraConfig = OPTIONS, seed: int = 0) -> torch.nn.Module:
    """The tiny model in float64 with adapters whose B is random too (at B = 0, A's gradient is 0)."""
    model = lora.apply(load_model(str(path), "cpu", "float32").double().train(), config, base=str(path))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def logprobs(model, batch: TokenBatch) -> torch.Tensor:
    with torch.no_grad():
        return forward_tokens(model, batch.input_ids, batch.attention_mask, 1.0)[0]


def test_the_update_is_a_hand_written_lora_step(tiny_chatml, batch):
    """From the full model's gradient G of each adapted weight, by hand: dL/dB = s G A^T and
    dL/dA = s B^T G (s = alpha / rank), then AdamW's first step, lr * g / (|g| + eps) (bias
    corrected; no weight decay, no clipping)."""
    model = adapted(tiny_chatml)
    config = LearnerConfig(precision="fp64", lr=LR, max_grad_norm=None, micro_batch_size=64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = load_model(str(tiny_chatml), "cpu", "float32").double().train()
    plain.load_state_dict(lora.merged(before, OPTIONS.scaling))
    reference = TorchLearner(plain, make("grpo"), config)
    finite, _, _ = reference.compute_gradients(reference.prepare_batch(batch))
    assert finite
    full = dict(plain.named_parameters())
    TorchLearner(model, make("grpo"), config).train_step(batch)
    after, params, s, checked = model.state_dict(), dict(model.named_parameters()), OPTIONS.scaling, 0
    for name in model.agentrl_lora.targets:
        a, b = before[f"{name}.lora_A.default.weight"], before[f"{name}.lora_B.default.weight"]
        grad = full[f"{name}.weight"].grad
        for key, by_hand in (
            (f"{name}.lora_A.default.weight", s * b.T @ grad),
            (f"{name}.lora_B.default.weight", s * grad @ a.T),
        ):
            g = params[key].grad  # the learner's (kept until its next step)
            assert torch.allclose(g, by_hand, rtol=1e-9, atol=1e-14 * float(by_hand.abs().max())), key
            assert torch.allclose(after[key], before[key] - LR * g / (g.abs() + 1e-8), rtol=0, atol=1e-15), key
            checked += 1
    assert checked == 2 * len(model.agentrl_lora.targets) == 2 * 14  # all-linear: 7 per layer, 2 layers


def test_only_the_adapters_change_and_the_reference_is_the_base_model(tiny_chatml, batch):
    model = adapted(tiny_chatml)
    base = {k: v.clone() for k, v in model.state_dict().items() if not lora.is_adapter_key(k)}
    learner = TorchLearner(model, make("vcpo", kl_coef=0.1), LearnerConfig(precision="fp64", lr=LR))
    assert learner.reference is learner.model  # no second model in memory
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(lora.is_adapter_key(n) for n in trainable)
    for _ in range(2):
        learner.train_step(batch)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in base.items())  # base weights untouched
    plain = load_model(str(tiny_chatml), "cpu", "float32").double().eval()
    prepared = learner.prepare_batch(batch)
    mask = batch.loss_mask > 0
    assert torch.allclose(prepared.ref_logprobs[mask], logprobs(plain, batch)[mask], atol=1e-10)
    assert model.training and not torch.allclose(logprobs(model, batch)[mask], logprobs(plain, batch)[mask])


def test_the_engines_get_merged_weights_that_compute_what_the_adapted_model_computes(tiny_chatml, batch):
    model = adapted(tiny_chatml).eval()
    learner = TorchLearner(model, make("grpo"), LearnerConfig(precision="fp64"))
    engine_model = load_model(str(tiny_chatml), "cpu", "float32").double().eval()
    state = learner.policy_state()
    assert set(state) == set(engine_model.state_dict())  # the plain model's names, nothing more
    engine_model.load_state_dict(state, strict=True)
    mask = batch.loss_mask > 0
    assert torch.allclose(logprobs(engine_model, batch)[mask], logprobs(model, batch)[mask], atol=1e-10)


def test_a_checkpoint_holds_the_adapter_in_peft_format_and_resumes(tiny_chatml, batch, tmp_path):
    model = adapted(tiny_chatml)
    learner = TorchLearner(model, make("grpo"), LearnerConfig(precision="fp64", lr=LR))
    learner.train_step(batch)
    learner.save(tmp_path)
    saved = torch.load(tmp_path / "learner.pt", weights_only=False)
    assert saved["model"] and all(lora.is_adapter_key(k) for k in saved["model"])  # the adapters, not the base
    assert lora.is_adapter_dir(tmp_path) and lora.base_of(tmp_path) == str(tiny_chatml)
    base = load_model(str(tiny_chatml), "cpu", "float32").double().eval()
    by_peft = peft.PeftModel.from_pretrained(base, str(tmp_path)).eval()  # peft reads what agentrl wrote
    mask = batch.loss_mask > 0
    with torch.no_grad():
        out = by_peft(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    ours = model.eval()(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert torch.allclose(out, ours.detach(), atol=1e-10)
    model.train()
    resumed = TorchLearner(adapted(tiny_chatml, seed=1), make("grpo"), learner.config)
    resumed.load(tmp_path)
    for one in (learner, resumed):
        one.train_step(batch)
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in model.state_dict().items())
    assert torch.allclose(logprobs(resumed.model, batch)[mask], logprobs(model, batch)[mask], atol=0)
    other = TorchLearner(adapted(tiny_chatml, lora.LoraConfig(rank=2)), make("grpo"), learner.config)
    with pytest.raises(CheckpointError, match="adapters do not fit"):
        other.load(tmp_path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rank": -1}, "rank"),
        ({"rank": 8, "alpha": 0.0}, "alpha=0.0 must be above 0"),  # every update scaled to nothing
        ({"rank": 8, "target_modules": ["nope"]}, "no layer is called 'nope'; layers that can be adapted: down_proj"),
        ({"rank": 8, "target_modules": ["mlp"]}, "'mlp' is a Qwen2MLP, not a linear layer"),
        ({"rank": 8, "target_modules": ["embed_tokens"]}, "'embed_tokens' is a Embedding"),
        ({"rank": 8, "target_modules": ["lm_head"]}, "shares its weight with the input embeddings"),
        ({"rank": 8, "target_modules": ["all-linear", "q_proj"]}, "all-linear stands alone"),
    ],
)
def test_bad_lora_options_are_one_line_errors(options, message, tiny_chatml):
    """What an outsider tried: each was accepted once (a tied lm_head then sampled and exported
    other weights than it trained; embed_tokens crashed; alpha 0 trained nothing; all-linear with
    a name trained that name alone)."""
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        lora.apply(load_model(str(tiny_chatml), "cpu", "float32"), lora.LoraConfig(**options), str(tiny_chatml))
    assert "\n" not in str(caught.value)


def test_the_adapter_names_its_base_by_absolute_path_and_says_when_it_is_gone(tiny_chatml, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_chatml.parent)
    model = lora.apply(load_model(tiny_chatml.name, "cpu", "float32"), OPTIONS, base=tiny_chatml.name)
    assert model.agentrl_lora.base == str(tiny_chatml.resolve())
    TorchLearner(model, make("grpo"), LearnerConfig()).save(tmp_path)
    assert lora.base_of(tmp_path) == str(tiny_chatml.resolve())
    config = json.loads((tmp_path / lora.CONFIG_FILE).read_text())
    (tmp_path / lora.CONFIG_FILE).write_text(json.dumps(config | {"base_model_name_or_path": "/gone/model"}))
    with pytest.raises(ModelLoadError, match="which is not there any more"):
        lora.base_of(tmp_path)
    (tmp_path / lora.CONFIG_FILE).write_text(json.dumps(config))
    (tmp_path / lora.WEIGHTS_FILE).unlink()
    with pytest.raises(ModelLoadError, match=r"has no adapter_model\.safetensors"):
        lora.merge_adapter_dir(tmp_path, tmp_path / "merged")


def test_the_model_with_adapters_deep_copies(tiny_chatml):
    """A deep copy (what a reference model was before LoRA) keeps its adapters' record."""
    model = adapted(tiny_chatml)
    assert lora.adapters_of(copy.deepcopy(model)) == model.agentrl_lora
