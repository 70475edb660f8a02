"""The vLLM engine, for real, on the CPU build of vLLM with the default model.

Selected with ``-m vllm`` (or left out with ``-m "not vllm"`` where vllm is not installed).
Prints the logprob agreement with the learner's teacher-forced logprobs."""

import json
import math
import sys

import pytest
import torch

from agentrl.cli.main import main
from agentrl.engines.backends import VLLMOptions
from agentrl.engines.base import Engine, SamplingParams
from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.engines.logprobs import teacher_forced_logprobs
from agentrl.errors import ModelLoadError
from agentrl.models.tiny import SYSTEM_XML
from agentrl.trainer.setup import DEFAULT_MODEL
from helpers import chat_prompts

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
MODEL = str(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def engine():
    from agentrl.engines.vllm import VLLMEngine

    return VLLMEngine(MODEL, seed=0)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(MODEL)


def prompts(tokenizer, n=8):
    return chat_prompts(tokenizer, [f"What is {i + 3} * {i * 7 + 2}?" for i in range(n)], SYSTEM_XML)


def test_generates_tokens_logprobs_and_finish_reasons(engine, tokenizer):
    assert isinstance(engine, Engine)
    stop = "</calculator>"
    params = SamplingParams(temperature=1.0, max_new_tokens=24, stop=(stop,), seed=3)
    limits = [24, 24, 5, 0, 24, 1, 24, 24]
    out = engine.generate(prompts(tokenizer), params, limits)
    assert out[3].token_ids == [] and out[3].finish_reason == "length"
    for completion, limit in zip(out, limits, strict=True):
        ids = completion.token_ids
        assert len(ids) == len(completion.logprobs) <= limit
        assert all(math.isfinite(lp) and lp <= 0 for lp in completion.logprobs)
        if completion.finish_reason == "length":
            assert len(ids) == limit
        elif ids[-1] in engine.eos_token_ids:
            assert completion.stop_reason == tokenizer.convert_ids_to_tokens(ids[-1])
        else:  # a stop string: the whole token that completed it is kept, nothing after it is sampled
            assert completion.stop_reason == stop
            assert stop in tokenizer.decode(ids) and stop not in tokenizer.decode(ids[:-1])
    assert any(c.finish_reason == "stop" for c in out)


def test_the_same_seed_samples_the_same_tokens(engine, tokenizer):
    params = SamplingParams(temperature=1.0, max_new_tokens=16, seed=11)
    first, second = (engine.generate(prompts(tokenizer), params) for _ in range(2))
    assert [c.token_ids for c in first] == [c.token_ids for c in second]
    other = engine.generate(prompts(tokenizer), SamplingParams(temperature=1.0, max_new_tokens=16, seed=12))
    assert [c.token_ids for c in other] != [c.token_ids for c in first]


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 1.0), (1.0, 0.9)])
def test_logprobs_agree_with_the_learners_teacher_forcing(engine, tokenizer, temperature, top_p):
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=32, seed=5)
    batch = prompts(tokenizer, 32)
    out = engine.generate(batch, params)
    model = load_model(MODEL, "cpu")
    scored = teacher_forced_logprobs(
        model, [p + c.token_ids for p, c in zip(batch, out, strict=True)], temperature, top_p=top_p
    )
    sampled = torch.tensor([lp for c in out for lp in c.logprobs], dtype=torch.float64)
    learner = torch.tensor(
        [lp for p, c, s in zip(batch, out, scored, strict=True) for lp in s[len(p) :]], dtype=torch.float64
    )
    diff = (sampled - learner).abs()
    ratio = (learner - sampled).exp()
    outside = float(((ratio < 0.9) | (ratio > 1.1)).double().mean())
    print(
        f"\nvllm vs teacher-forcing (T={temperature}, top_p={top_p}, {diff.numel()} tokens): "
        f"max |diff| {diff.max():.2e}, mean |diff| {diff.mean():.2e}, ratio outside [0.9, 1.1] {outside:.4f}"
    )
    assert diff.numel() > 100
    assert float(diff.max()) < 1e-3 and outside == 0.0


def test_a_weight_update_samples_as_a_fresh_engine_on_those_weights(engine, tokenizer, tmp_path):
    from agentrl.engines.vllm import VLLMEngine

    model = load_model(MODEL, "cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    params = SamplingParams(temperature=1.0, max_new_tokens=24, seed=21)
    before = engine.generate(prompts(tokenizer), params)
    engine.update_weights(model.state_dict(), version=3)
    updated = engine.generate(prompts(tokenizer), params)
    assert engine.policy_version == 3 and all(c.policy_version == 3 for c in updated)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    fresh = VLLMEngine(str(tmp_path), seed=0).generate(prompts(tokenizer), params)
    assert [c.token_ids for c in updated] == [c.token_ids for c in fresh]
    pairs = [(a, b) for u, f in zip(updated, fresh, strict=True) for a, b in zip(u.logprobs, f.logprobs, strict=True)]
    assert max(abs(a - b) for a, b in pairs) < 1e-5
    assert [c.logprobs for c in updated] != [c.logprobs for c in before]


def test_without_vllm_the_error_says_how_to_install_it(monkeypatch):
    from agentrl.engines import vllm as engine_module

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ModelLoadError, match=r"vllm is not installed: pip install 'agentrl\[vllm\]'"):
        engine_module.import_vllm()


def test_a_model_vllm_cannot_load_is_a_clear_error(tmp_path):
    from agentrl.engines.vllm import VLLMEngine

    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_text((DEFAULT_MODEL / name).read_text())
    with pytest.raises(ModelLoadError, match=r"vllm cannot load the model in .*: "):  # no weights
        VLLMEngine(str(tmp_path))
    config = json.loads((DEFAULT_MODEL / "config.json").read_text()) | {"architectures": ["NoSuchLMForCausalLM"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"vllm cannot load the model in .*: "):
        VLLMEngine(str(tmp_path))
    with pytest.raises(ModelLoadError, match="not a model directory"):
        VLLMEngine(str(tmp_path / "missing"))


def test_colocation_needs_a_gpu():
    from agentrl.engines.vllm import VLLMEngine

    with pytest.raises(ModelLoadError, match="needs a GPU"):
        VLLMEngine(MODEL, VLLMOptions(colocate=True), device="cpu")


def train_args(runs, steps, *more):
    settings = ["tasks_per_step=4", "group_size=4", "eval_tasks=8", "checkpoint_every=1", "engine.vllm.max_num_seqs=64"]
    settings += more
    args = ["train", "--engine", "vllm", "--algo", "grpo", "--steps", str(steps), "--no-progress"]
    return [*args, "--runs-dir", str(runs), "--name", "run", *(x for s in settings for x in ("--set", s))]


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_train_and_eval_run_on_vllm(tmp_path):
    assert main(train_args(tmp_path, 2)) == 0
    rows = metrics(tmp_path / "run")
    steps = [r for r in rows if r["step"] > 0 and "rollout/sampled_tokens" in r]
    assert len(steps) == 2 and all(r["rollout/sampled_tokens"] > 0 for r in steps)
    # the learner scores the engine's samples like with like: pi_old / mu stays close to 1
    assert all(r["offpolicy/token_ratio/max"] < 1.01 and r["offpolicy/token_ratio/min"] > 0.99 for r in steps), steps
    out = tmp_path / "eval"
    args = ["eval", "--engine", "vllm", "--env", "math_tool", "--num-tasks", "8", "--output", str(out)]
    assert main([*args, "--no-progress"]) == 0
    assert (out / "metrics.json").is_file()


def test_asynchronous_training_runs_vllm_in_a_worker_process(tmp_path):
    args = train_args(tmp_path, 3, "asynchronous.max_staleness=0")
    assert main([*args, "--async"]) == 0
    steps = [r for r in metrics(tmp_path / "run") if "rollout/sampled_tokens" in r]
    assert [r["step"] for r in steps] == [1, 2, 3] and all(r["rollout/sampled_tokens"] > 0 for r in steps)
    # at K = 0 the worker's vLLM samples with exactly the learner's weights of the step before
    assert all(r["async/staleness_max"] == 0 for r in steps) and sum(r["async/syncs"] for r in steps) >= 2
    assert all(r["offpolicy/token_ratio/max"] < 1.01 and r["offpolicy/token_ratio/min"] > 0.99 for r in steps), steps


def test_the_engine_dying_mid_rollout_stops_the_run_and_it_resumes(tmp_path, capsys, monkeypatch):
    import vllm

    real = vllm.LLM.generate
    first_checkpoint = tmp_path / "run" / "checkpoints" / "step-000001"

    def dies_after_the_first_checkpoint(self, *args, **kwargs):
        if first_checkpoint.exists():
            raise RuntimeError("EngineCore encountered an issue")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(vllm.LLM, "generate", dies_after_the_first_checkpoint)
    assert main(train_args(tmp_path, 4)) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("agentrl:")]
    assert len(errors) == 1 and "the vllm engine failed during generation" in errors[0], errors
    monkeypatch.undo()
    assert main(["train", "--resume", str(tmp_path / "run"), "--no-progress"]) == 0
    assert "at step 1" in capsys.readouterr().out
    assert [r["step"] for r in metrics(tmp_path / "run") if "rollout/sampled_tokens" in r] == [1, 2, 3, 4]
