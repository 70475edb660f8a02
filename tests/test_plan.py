"""The memory plan (agentrl.plan, agentrl plan) against what can be counted or measured on a CPU:
parameter counts against the real models, the ZeRO accounting against DeepSpeed's own
estimators, LoRA's trained parameters against peft's, and activations against the tensors a
forward pass really keeps for the backward."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from agentrl.cli.main import main
from agentrl.engines.loading import load_model
from agentrl.learner import lora
from agentrl.learner.forward import forward_tokens
from agentrl.plan import Setup, activations, counts, layer_activations, load_config, memory_plan, zero_model_states

# Qwen2.5's published sizes (their model cards: 0.49B, 1.54B, 7.61B)
SHAPES = {"qwen2.5-0.5b": 494_032_768, "qwen2.5-1.5b": 1_543_714_304, "qwen2.5-7b": 7_615_616_512}


@pytest.mark.parametrize("name", SHAPES)
def test_the_shipped_shapes_count_the_published_parameters(name):
    params, trained, _ = counts(load_config(name), Setup())
    assert params == trained == SHAPES[name]


def test_a_model_directory_counts_what_loads(tiny_chatml):
    model = load_model(str(tiny_chatml), "cpu", "float32")
    params, _, _ = counts(load_config(str(tiny_chatml)), Setup())
    assert params == sum(p.numel() for p in model.parameters())
    adapted = lora.apply(model, lora.LoraConfig(rank=8), str(tiny_chatml))
    _, trained, _ = counts(load_config(str(tiny_chatml)), Setup(lora_rank=8))
    assert trained == sum(p.numel() for p in adapted.parameters() if p.requires_grad)  # what peft trains


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("gpus", [1, 8])
@pytest.mark.parametrize("stage", [2, 3])
def test_zero_model_states_agree_with_deepspeeds_estimators(name, gpus, stage):
    """At DeepSpeed's precision (16-bit weights). The counts are DeepSpeed's way (``model_to_params``:
    a tied weight once, the largest module's own parameters), by identity: on the meta device every
    ``data_ptr`` is 0, which ``model_to_params`` would take for one shared weight."""
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(load_config(name))
    total = sum({id(p): p.numel() for p in model.parameters()}.values())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    if stage == 2:
        _, theirs = estimate_zero2_model_states_mem_needs(total, gpus, cpu_offload=False)
    else:
        _, theirs, _ = estimate_zero3_model_states_mem_needs(total, largest, gpus, cpu_offload=False)
    params, _, ours_largest = counts(load_config(name), Setup())
    ours = sum(zero_model_states(params, params, ours_largest, gpus, stage, weight_bytes=2).values())
    assert abs(ours - theirs) <= 0.10 * theirs, (ours, theirs)


def saved_bytes(config, rows: int, length: int, checkpointing: bool) -> int:
    """The bytes of the tensors the learner's forward keeps for the backward (parameters aside)."""
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).train()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ids = torch.randint(0, config.vocab_size, (rows, length))
    kept: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        kept[storage.data_ptr()] = max(kept.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward_tokens(model, ids, torch.ones_like(ids), 1.0)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(size for ptr, size in kept.items() if ptr not in weights)


@pytest.mark.parametrize(
    ("hidden", "layers", "inter", "heads"), [(256, 4, 1024, 4), (512, 4, 2816, 8), (896, 2, 4864, 14)]
)
def test_activations_are_what_a_forward_keeps(hidden, layers, inter, heads):
    """Float32 on this CPU: within 10%; with gradient checkpointing, what the forward keeps (each
    layer's input, the last hidden states, the logits; the recomputed layer comes in the backward)
    within 25%. bf16 autocast is not checked here: on a CPU it keeps more in float32 than CUDA's."""
    config = Qwen2Config(
        hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=2, vocab_size=4096, tie_word_embeddings=True, use_cache=False,
    )  # fmt: skip
    setup = Setup(micro_batch_size=4, seq_len=256, precision="fp32")
    measured = saved_bytes(config, 4, 256, checkpointing=False)
    assert abs(activations(config, setup) - measured) <= 0.10 * measured
    checkpointed = Setup(micro_batch_size=4, seq_len=256, precision="fp32", gradient_checkpointing=True)
    forward_part = activations(config, checkpointed) - layer_activations(config, checkpointed)
    measured = saved_bytes(config, 4, 256, checkpointing=True)
    assert abs(forward_part - measured) <= 0.25 * measured, (forward_part, measured)


def test_lora_and_zero_shrink_the_plan_where_they_should():
    config = load_config("qwen2.5-7b")
    full = memory_plan(config, Setup(gradient_checkpointing=True))
    adapters = memory_plan(config, Setup(gradient_checkpointing=True, lora_rank=16))
    assert adapters.rows["optimizer (AdamW)"] < full.rows["optimizer (AdamW)"] / 100
    zero3 = memory_plan(config, Setup(gpus=8, backend="deepspeed", zero_stage=3, precision="fp32"))
    zero2 = memory_plan(config, Setup(gpus=8, backend="deepspeed", zero_stage=2, precision="fp32"))
    assert zero3.rows["weights"] == pytest.approx(zero2.rows["weights"] / 8)


def test_the_command_says_whether_it_fits(capsys):
    assert main(["plan", "--model", "qwen2.5-0.5b", "--gradient-checkpointing"]) == 0
    out = capsys.readouterr().out
    assert "494,032,768 parameters" in out and "\nfits:" in out
    assert main(["plan", "--model", "qwen2.5-7b"]) == 1  # the table, and a status a script can test
    assert "does not fit" in (out := capsys.readouterr().out) and "try --gradient-checkpointing" in out
    assert main(["plan", "--model", "qwen-7b-typo"]) == 2
    err = capsys.readouterr().err
    assert "qwen2.5-7b" in err and len(err.strip().splitlines()) == 1
