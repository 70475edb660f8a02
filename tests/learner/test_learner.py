import copy

import pytest
import torch

from agentrl.algos import aggregate, make, names
from agentrl.algos.core import GlobalCounts
from agentrl.batch import TokenBatch
from agentrl.errors import CheckpointError, ConfigError
from agentrl.learner import LearnerConfig, TorchLearner
from agentrl.learner.forward import forward_tokens

IDENTITY_OPTIONS = {"spear": {"clip_cov": False, "entropy_coef": 0.0}}
# Clip-Cov on the current policy picks per micro-batch, as the reference does; on pi_old it picks
# once per optimizer batch, which is what makes the gradient independent of the split
SPLIT_OPTIONS = {"spear": {"clip_cov_logprobs": "pi_old"}}


def grads(model):
    return torch.cat(
        [p.grad.flatten() if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype) for p in model.parameters()]
    )


def test_token_batch_shapes(trajectories):
    batch = TokenBatch.from_trajectories(trajectories)
    b, t = batch.input_ids.shape
    assert b == len(trajectories) and t == max(len(x.token_ids) for x in trajectories)
    for name in ("attention_mask", "loss_mask", "behavior_logprobs", "turn_index", "policy_version"):
        assert getattr(batch, name).shape == (b, t)
    assert batch.rewards.shape == batch.group_index.shape == batch.truncated.shape == (b,)
    assert torch.equal(batch.lengths, torch.tensor([float(sum(x.loss_mask)) for x in trajectories]))
    assert batch.group_index.tolist() == [i // 4 for i in range(b)]
    assert batch.split(3)[0].size + batch.split(3)[1].size + batch.split(3)[2].size == b


def test_recomputed_pi_old_matches_the_sampler(tiny_chatml, trajectories):
    from agentrl.engines.loading import load_model

    learner = TorchLearner(load_model(str(tiny_chatml)), make("grpo"))
    batch = TokenBatch.from_trajectories(trajectories)
    batch = learner.prepare_batch(batch)
    diff = ((batch.old_logprobs - batch.behavior_logprobs).abs() * batch.loss_mask).max()
    assert diff <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", names())
def test_on_policy_gradient_through_the_model(name, model64, batch):
    """At ratio 1 the learner's gradient equals autograd of the direct formula aggregate(-A log pi)."""
    # Clip-Cov zeroes the loss of sampled high-covariance tokens even at ratio 1, by design; its own
    # identity (no eligible token -> PPO) is in tests/algos/test_spear.py
    options = IDENTITY_OPTIONS.get(name, {})
    learner = TorchLearner(model64, make(name, **options), LearnerConfig(precision="fp64", micro_batch_size=5))
    batch = learner.prepare_batch(batch)
    batch = batch.with_fields(behavior_logprobs=batch.old_logprobs.clone())  # exactly on-policy: mu = pi_old = pi_theta
    batch = learner.algorithm.prepare(learner.algorithm.with_advantages(batch))
    learner.compute_gradients(batch)
    got = grads(model64)
    model64.zero_grad()
    logprobs = forward_tokens(model64, batch.input_ids, batch.attention_mask, batch.temperature)[0]
    mask = learner.algorithm.loss_mask(batch)
    counts = GlobalCounts.of(mask, learner.algorithm.config.norm_constant)
    aggregate(-batch.advantages * logprobs, mask, learner.algorithm.config.aggregation, counts).backward()
    want = grads(model64)
    assert want.abs().sum() > 0
    assert torch.allclose(got, want, atol=1e-10, rtol=1e-7), (got - want).abs().max()


@pytest.mark.slow
@pytest.mark.parametrize("name", names())
def test_micro_batching_does_not_change_the_gradient(name, model64, batch):
    """One pass, four passes of rows, and passes packed under a token budget (rows sorted by
    length, each pass cut to its longest row) give the same loss and gradient."""
    longest = int(batch.seq_lengths.max())
    results = []
    for rows, tokens in ((batch.size, None), (-(-batch.size // 4), None), (batch.size, 2 * longest)):
        model = copy.deepcopy(model64)
        config = LearnerConfig(precision="fp64", micro_batch_size=rows, micro_batch_tokens=tokens)
        learner = TorchLearner(model, make(name, **SPLIT_OPTIONS.get(name, {})), config)
        b = learner.prepare_batch(copy.deepcopy(batch))
        # move off-policy so clipping and ratios are exercised
        shift = torch.sin(torch.arange(b.old_logprobs.numel(), dtype=torch.float64)).view_as(b.old_logprobs)
        b = learner.algorithm.prepare(b.with_fields(old_logprobs=b.old_logprobs + 0.05 * shift * b.loss_mask))
        _, metrics, _ = learner.compute_gradients(b)
        results.append((metrics.values["loss/total"], grads(model)))
    loss1, g1 = results[0]
    for loss, g in results[1:]:
        assert abs(loss1 - loss) <= 1e-6 * max(1.0, abs(loss1))
        assert torch.allclose(g1, g, atol=1e-6, rtol=0)


def test_opo_refuses_several_steps_per_batch(model64):
    with pytest.raises(ConfigError, match=r"opo is exactly on-policy.*epochs=2"):
        TorchLearner(model64, make("opo"), LearnerConfig(epochs=2))
    with pytest.raises(ConfigError, match="minibatches=4"):
        TorchLearner(model64, make("opo"), LearnerConfig(minibatches=4))


def test_opo_ratio_stays_one(tiny_chatml, batch):
    from agentrl.engines.loading import load_model

    learner = TorchLearner(load_model(str(tiny_chatml)), make("opo"), LearnerConfig(lr=1e-3, micro_batch_size=4))
    metrics = learner.train_step(batch)
    assert metrics["ratio/abs_dev/max"] <= 1e-6
    assert metrics["learner/skipped_steps"] == 0 and metrics["grad/norm"] > 0


def test_a_non_finite_step_never_reaches_the_weights(model64, batch):
    algo = make("grpo")
    learner = TorchLearner(model64, algo, LearnerConfig(precision="fp64", lr=1e-2))
    before = copy.deepcopy(model64.state_dict())
    real = algo.token_loss
    algo.token_loss = lambda inputs, b, counts: (real(inputs, b, counts)[0] * float("nan"), {})
    metrics = learner.train_step(batch)
    assert metrics["learner/skipped_steps"] == 1
    assert all(torch.equal(before[k], v) for k, v in model64.state_dict().items())
    algo.token_loss = real
    metrics = learner.train_step(batch)
    assert metrics["learner/skipped_steps"] == 1
    assert any(not torch.equal(before[k], v) for k, v in model64.state_dict().items())


def test_lr_scale_hook_scales_the_step(model64, batch):
    algo = make("grpo")
    algo.lr_scale = lambda b: (0.0, {"custom/factor": 0.0})
    learner = TorchLearner(model64, algo, LearnerConfig(precision="fp64", lr=1e-2))
    before = copy.deepcopy(model64.state_dict())
    metrics = learner.train_step(batch)
    assert metrics["learner/lr"] == 0.0 and metrics["custom/factor"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in model64.state_dict().items())
    assert learner.optimizer.param_groups[0]["lr"] == 1e-2  # restored after the step


def test_warmup_raises_lr_linearly_then_holds(model64, batch):
    learner = TorchLearner(model64, make("grpo"), LearnerConfig(precision="fp64", lr=1e-2, warmup_steps=4))
    lrs = [learner.train_step(batch.rows(slice(None)))["learner/lr"] for _ in range(6)]
    assert lrs == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2, 1e-2])
    assert learner.optimizer.param_groups[0]["lr"] == 1e-2


def test_kl_reference_is_frozen_copy(model64, batch):
    learner = TorchLearner(model64, make("grpo", kl_coef=0.1), LearnerConfig(precision="fp64", lr=1e-2))
    assert learner.reference is not None and learner.reference is not model64
    first = learner.train_step(batch)
    second = learner.train_step(batch)
    assert first["loss/kl_ref"] < 1e-12 < second["loss/kl_ref"]


@pytest.mark.parametrize("name", ["grpo", "opo", "ppo"])
def test_awkward_batches(model64, trajectories, name):
    """NaN rewards / logprobs, all-masked rows, zero-variance and singleton groups."""
    rows = copy.deepcopy(trajectories[:9])
    rows[0].reward = float("nan")
    rows[1].behavior_logprobs[-1] = float("inf")
    rows[2].loss_mask = [0] * len(rows[2].loss_mask)
    for r in rows[4:8]:
        r.reward = 1.0  # a zero-variance group
    rows[8].group_id = "alone"
    batch = TokenBatch.from_trajectories(rows)
    assert batch.dropped == 2 and batch.size == 7
    learner = TorchLearner(model64, make(name), LearnerConfig(precision="fp64"))
    metrics = learner.train_step(batch)
    assert metrics["batch/dropped_nonfinite"] == 2 and metrics["batch/empty_rows"] == 1
    assert metrics["batch/singleton_groups"] >= 1
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert metrics["learner/skipped_steps"] == 0


def test_all_rows_non_finite_is_a_clear_error(trajectories):
    rows = copy.deepcopy(trajectories[:2])
    for r in rows:
        r.reward = float("nan")
    with pytest.raises(ValueError, match="no usable trajectory: 2 had non-finite"):
        TokenBatch.from_trajectories(rows)


def test_state_dict_round_trip(model64, batch):
    learner = TorchLearner(model64, make("ppo"), LearnerConfig(precision="fp64", lr=1e-2))
    learner.train_step(batch)
    state = copy.deepcopy(learner.state_dict())
    other = TorchLearner(copy.deepcopy(model64), make("ppo"), LearnerConfig(precision="fp64", lr=1e-2))
    other.load_state_dict(state)
    assert other.step == 1
    a, b = learner.train_step(copy.deepcopy(batch)), other.train_step(copy.deepcopy(batch))
    assert a["loss/total"] == pytest.approx(b["loss/total"], rel=1e-9)


def test_save_and_load_round_trip_through_a_folder(model64, batch, tmp_path):
    learner = TorchLearner(model64, make("ppo"), LearnerConfig(precision="fp64", lr=1e-2))
    learner.train_step(batch)
    learner.save(tmp_path)
    other = TorchLearner(copy.deepcopy(model64), make("ppo"), LearnerConfig(precision="fp64", lr=1e-2))
    other.load(tmp_path)
    assert other.step == 1
    a, b = learner.train_step(copy.deepcopy(batch)), other.train_step(copy.deepcopy(batch))
    assert a["loss/total"] == pytest.approx(b["loss/total"], rel=1e-9)


def test_a_data_parallel_checkpoint_is_refused_in_one_line(model64, tmp_path):
    torch.save(
        {"algorithm": {}, "step": 3, "skipped_steps": 0, "world_size": 2, "zero_stage": 2}, tmp_path / "learner.pt"
    )
    learner = TorchLearner(model64, make("grpo"), LearnerConfig(precision="fp64"))
    with pytest.raises(CheckpointError, match="written by a data-parallel learner"):
        learner.load(tmp_path)
    (tmp_path / "learner.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        learner.load(tmp_path)


def test_vcpo_exact_baseline_gets_score_norms_from_the_learner(model64, batch):
    """Exact OPOB: the learner computes ||grad sum_t log pi(y_i)||^2 per row, matching autograd."""
    learner = TorchLearner(model64, make("vcpo", grad_norm="exact"), LearnerConfig(precision="fp64"))
    assert learner.algorithm.needs_grad_norms
    norms = learner.prepare_batch(batch).grad_sq_norm
    assert norms.shape == (batch.size,)
    row = int(batch.lengths.argmax())
    logprobs = forward_tokens(model64, batch.input_ids[row : row + 1], batch.attention_mask[row : row + 1], 1.0)[0]
    model64.zero_grad()
    (logprobs * batch.loss_mask[row : row + 1]).sum().backward()
    assert norms[row].item() == pytest.approx(float((grads(model64) ** 2).sum()), rel=1e-9)
    assert float(norms[batch.lengths == 0].sum()) == 0.0
    metrics = learner.train_step(batch)
    assert metrics["vcpo/ess"] > 0 and metrics["learner/skipped_steps"] == 0


def test_token_batch_from_jsonl(trajectories, tmp_path):
    from agentrl.rollout import write_trajectories

    write_trajectories(tmp_path / "t.jsonl", trajectories)
    a, b = TokenBatch.from_jsonl(tmp_path / "t.jsonl"), TokenBatch.from_trajectories(trajectories)
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.behavior_logprobs, b.behavior_logprobs)
    assert torch.equal(a.group_index, b.group_index) and torch.equal(a.turn_index, b.turn_index)


def test_a_non_finite_gradient_with_a_finite_loss_is_skipped(model64, batch):
    learner = TorchLearner(model64, make("grpo"), LearnerConfig(precision="fp64", lr=1e-2))
    before = copy.deepcopy(model64.state_dict())
    weight = next(model64.parameters())
    handle = weight.register_hook(lambda g: g * float("nan"))
    metrics = learner.train_step(batch)
    handle.remove()
    assert metrics["learner/skipped_steps"] == 1 and metrics["loss/total"] == metrics["loss/total"]  # loss finite
    assert all(torch.equal(before[k], v) for k, v in model64.state_dict().items())


def test_a_learner_trains_the_turn_critic(tiny_chatml, trajectories):
    """st_ppo with advantage=gae: the learner builds a value head and trains it."""
    from agentrl.engines.loading import load_model

    learner = TorchLearner(
        load_model(str(tiny_chatml)).float(), make("st_ppo", advantage="gae"), LearnerConfig(lr=1e-2)
    )
    assert learner.value_head is not None
    before = [p.detach().clone() for p in learner.value_head.parameters()]
    batch = TokenBatch.from_trajectories(trajectories)
    metrics = learner.train_step(batch.with_fields(rewards=batch.rewards + 0.25 * (torch.arange(batch.size) % 3)))
    assert metrics["loss/value"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.value_head.parameters(), strict=True))
