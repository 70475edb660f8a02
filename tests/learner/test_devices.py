"""The device audit (agentrl.testing.devices) on a CPU: it catches what a GPU would refuse, lets
through what a GPU allows, and every objective's update, along every code path its options open,
runs on a virtual ``cuda:0`` learner without a device mistake, checkpoint save and load included."""

from __future__ import annotations

import threading

import pytest
import torch

from agentrl.algos import make, names
from agentrl.batch import TokenBatch
from agentrl.engines.loading import load_model
from agentrl.learner import LearnerConfig, TorchLearner
from agentrl.testing.devices import DeviceAudit, DeviceMismatch, device_of
from agentrl.testing.variants import objective_variants

CUDA = torch.device("cuda", 0)


# ---- the audit itself


def test_mixing_devices_is_refused_where_a_gpu_refuses_it(tmp_path):
    with DeviceAudit() as audit:
        on_gpu = torch.arange(4.0).cuda()
        with pytest.raises(DeviceMismatch, match=r"add: tensors on cpu and cuda:0, at .*test_devices.py"):
            torch.ones(4) + on_gpu
        with pytest.raises(DeviceMismatch, match="index_add_"):
            torch.zeros(2).index_add_(0, torch.tensor([0, 1, 0, 1], device=on_gpu.device), torch.ones(4))
        with pytest.raises(DeviceMismatch, match="__getitem__"):
            torch.ones(4)[torch.tensor([0, 1], device="cuda")]  # CUDA indices into a CPU tensor
        with pytest.raises(DeviceMismatch, match="numpy"):
            on_gpu.numpy()
        with pytest.raises(DeviceMismatch, match="multinomial"):
            torch.multinomial(on_gpu.softmax(0), 1, generator=torch.Generator())  # a CPU generator
        assert audit.operations > 0


def test_what_a_gpu_allows_passes_and_devices_follow_the_data(tmp_path):
    with DeviceAudit():
        x = torch.arange(4.0, device="cuda")
        assert x.device == CUDA and x.is_cuda and (x * 2).device == CUDA
        assert (x + torch.tensor(1.0)).device == CUDA  # a 0-dim CPU tensor beside a CUDA one
        assert x[torch.tensor([0, 2])].device == CUDA  # CPU indices into a CUDA tensor
        assert torch.zeros(2).device.type == "cpu" and torch.zeros(2, device=x.device).device == CUDA
        assert x.cpu().device.type == "cpu" and x.device == CUDA  # a move leaves the source where it was
        assert x.to(torch.ones(1)).device.type == "cpu" and x.to(torch.float64).device == CUDA
        y = torch.empty(4, device="cuda").copy_(torch.ones(4))  # copies cross devices
        assert y.device == CUDA and float(y.sum()) == 4.0  # the data is real: numbers still compute
        assert torch.multinomial(x.softmax(0), 1, generator=torch.Generator(device="cuda")).device == CUDA
        layer = torch.nn.Linear(2, 2).to("cuda")
        layer(torch.ones(1, 2, device="cuda")).sum().backward()
        assert layer.weight.device == CUDA and layer.weight.grad.device == CUDA
        torch.optim.AdamW(layer.parameters()).step()
        torch.save({"w": layer.weight.detach(), "cpu": torch.ones(1)}, tmp_path / "s.pt")
        loaded = torch.load(tmp_path / "s.pt")
        assert loaded["w"].device == CUDA and loaded["cpu"].device.type == "cpu"
        assert torch.load(tmp_path / "s.pt", map_location="cpu")["w"].device.type == "cpu"
        seen = []
        thread = threading.Thread(target=lambda: seen.append((torch.ones(2, device="cuda") * 2).device))
        thread.start()
        thread.join()
        assert seen == [CUDA]  # a thread started inside the audit is audited
    assert not hasattr(torch.Generator(), "virtual_device") and torch.load is not None  # all restored


class _Doubled(torch.autograd.Function):
    """A custom autograd Function whose backward allocates (ZeRO-3 fetches parameters in one)."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        ctx.seen = (grad.device, torch.empty(1, device="cuda").device)
        return grad * 2 + torch.zeros(grad.shape, device=grad.device)


def test_what_the_autograd_engine_calls_back_is_audited():
    """The backward runs hooks, a custom Function's backward and gradient checkpointing's
    recomputation where no torch function mode is active: the audit follows into each, with the
    gradients it hands them on the right device, and catches a mistake made there."""
    with DeviceAudit():
        p = torch.nn.Parameter(torch.ones(2, device="cuda"))
        x = torch.ones(2, device="cuda", requires_grad=True)
        seen = []
        p.register_post_accumulate_grad_hook(lambda t: seen.append(torch.empty(1, device="cuda").device))
        x.register_hook(lambda grad: seen.append(grad.device))
        out = _Doubled.apply(p * x)
        out.sum().backward()
        assert seen == [CUDA, CUDA] and out.grad_fn.seen == (CUDA, CUDA)
        layer = torch.nn.Linear(2, 2).to("cuda")
        recomputed = []
        layer.register_forward_hook(lambda m, i, o: recomputed.append(o.device))
        torch.utils.checkpoint.checkpoint(lambda t: layer(t).relu() * 3, x, use_reentrant=False).sum().backward()
        assert recomputed == [CUDA, CUDA]  # the forward, then its recomputation in the backward
        q = torch.nn.Parameter(torch.ones(2, device="cuda"))
        q.register_post_accumulate_grad_hook(lambda t: t.grad.add_(torch.ones(2)))  # a CPU tensor
        with pytest.raises(DeviceMismatch, match=r"add_: tensors on cpu and cuda:0, at .*test_devices.py"):
            (q * 2).sum().backward()


def test_collectives_take_cuda_tensors_as_nccl_does(tmp_path):
    """On a GPU machine the process group is NCCL, which reduces CUDA tensors only; the audit
    refuses a CPU tensor in a collective whatever the real group is (gloo here)."""
    import torch.distributed as dist

    joined = not dist.is_initialized()  # another test of the session may have joined one already
    if joined:
        dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        with DeviceAudit():
            dist.all_reduce(torch.ones(1, device="cuda"))
            gathered = [None]
            dist.all_gather_object(gathered, {"loss": 1.0})  # an object collective picks its own device
            assert gathered == [{"loss": 1.0}]
            with pytest.raises(DeviceMismatch, match=r"all_reduce \(NCCL takes CUDA tensors only\): tensors on cpu"):
                dist.all_reduce(torch.ones(1))
            with pytest.raises(DeviceMismatch, match="broadcast"):
                torch.distributed.distributed_c10d.broadcast(torch.ones(1), 0)
        dist.all_reduce(torch.ones(1))  # restored on leaving
    finally:
        if joined:
            dist.destroy_process_group()


def test_a_model_loaded_inside_the_audit_is_the_model_loaded_outside(tiny_chatml):
    """transformers builds a model on the meta device, then loads and initialises it. The audit once
    made ``meta`` virtual too, so the rotary embedding's ``inv_freq`` (a buffer computed, not
    loaded) was left as uninitialised memory, and the engine sampled from NaN now and then."""
    outside = load_model(str(tiny_chatml), "cpu", "float32")
    for _ in range(3):  # uninitialised memory differs from load to load
        with DeviceAudit():
            assert torch.empty(2, device="meta").is_meta and torch.empty(2, device="meta").device.type == "meta"
            assert torch.ones(2, device="cuda").to("meta").is_meta
            inside = load_model(str(tiny_chatml), "cuda", "float32")
            assert all(device_of(t) == CUDA for t in [*inside.parameters(), *inside.buffers()])
        expected = dict(outside.named_buffers()) | dict(outside.named_parameters())
        for name, tensor in [*inside.named_buffers(), *inside.named_parameters()]:
            assert torch.equal(tensor, expected[name]), name


# ---- every objective, every code path, on a virtual GPU learner

VARIANTS = [(name, options) for name in names() for options in objective_variants(name)]
REPLAY = {"buffer_size": 1, "replay_T": 1, "bonus_T": 1}  # SPEAR: replay fires on the second step


@pytest.fixture(scope="module")
def cpu_batch(trajectories) -> TokenBatch:
    """A real rollout batch, on the CPU as the trainer builds it, with reward spread in every group."""
    batch = TokenBatch.from_trajectories(trajectories)
    return batch.with_fields(rewards=batch.rewards + 0.25 * (torch.arange(batch.size) % 3))


def _id(name: str, options: dict) -> str:
    return name + "-" + (",".join(f"{k}={v}" for k, v in options.items()) or "defaults")


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=[_id(n, o) for n, o in VARIANTS])
def test_every_objective_trains_on_a_gpu_without_a_device_mistake(name, options, tiny_chatml, cpu_batch, tmp_path):
    """One update (two epochs, so the second runs off-policy) on a virtual GPU; SPEAR two, so its
    replay fires; at the defaults also a checkpoint saved, loaded and trained on."""
    algorithm = make(name, **({**REPLAY, **options} if name == "spear" else options))
    config = LearnerConfig(epochs=1 if algorithm.on_policy_only else 2, minibatches=1)
    with DeviceAudit() as audit:
        model = load_model(str(tiny_chatml), device="cuda")
        learner = TorchLearner(model, algorithm, config)
        assert device_of(next(learner.model.parameters())) == CUDA
        for _ in range(2 if name == "spear" else 1):
            metrics = learner.train_step(cpu_batch)
        if not options:
            learner.save(tmp_path)
            learner.load(tmp_path)
            metrics = learner.train_step(cpu_batch)
    assert audit.operations > 1000 and "loss/total" in metrics
    if name == "spear":
        assert metrics.get("replay/rows", 0) > 0 or options.get("replay_coef") == 0, metrics  # replay ran
