"""The rollout worker process's parts: weights through shared memory to a spawned process,
the learner's handle reporting a hung sync, and a worker's engine pinned to a second GPU.
(Whole runs with a worker process, and its failures, are in tests/trainer/test_async.py.)"""

import math
import os
import struct
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp

from agentrl.engines.base import SamplingParams
from agentrl.engines.config import EngineConfig
from agentrl.engines.mailbox import SharedWeightMailbox
from agentrl.rollout import RolloutConfig
from agentrl.rollout.stream import StreamError
from agentrl.rollout.worker import _SYNCING_SINCE, ProcessStream, WorkerSpec, pinned


def read_in_child(mailbox, than, out):
    """Runs in a spawned process: wait for a version above ``than``, send back what it read."""
    assert mailbox.wait_newer(than, timeout=30.0)
    state, version = mailbox.take_newer(than)
    out.put((version, {k: (v.dtype, v.float().tolist()) for k, v in state.items()}))  # plain data


def test_shared_mailbox_hands_a_spawned_process_the_newest_weights():
    template = {"w": torch.zeros(3, 4), "b": torch.zeros(4, dtype=torch.bfloat16)}
    mailbox = SharedWeightMailbox(template)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=read_in_child, args=(mailbox, 1, out))
    child.start()
    first = {"w": torch.randn(3, 4), "b": torch.randn(4).bfloat16()}
    mailbox.publish(first, 1)  # not above 1: the child keeps waiting
    second = {"w": torch.randn(3, 4), "b": torch.randn(4).bfloat16()}
    mailbox.publish(second, 2)
    version, state = out.get(timeout=60)
    child.join(30)
    assert child.exitcode == 0 and version == 2
    assert all(state[k] == (second[k].dtype, second[k].float().tolist()) for k in second)


def test_shared_mailbox_copies_and_orders_versions():
    mailbox = SharedWeightMailbox({"w": torch.zeros(2)})
    weights = {"w": torch.tensor([1.0, 2.0])}
    mailbox.publish(weights, 0)
    weights["w"].add_(10)  # the learner updates in place; the mailbox kept its copy
    state, version = mailbox.take_newer(-1)
    assert version == 0 and state["w"].tolist() == [1.0, 2.0]
    assert mailbox.take_newer(0) is None
    state["w"].zero_()  # a reader's copy is its own
    assert mailbox.take_newer(-1)[0]["w"].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="version 0 published after version 0"):
        mailbox.publish(weights, 0)
    start = time.monotonic()
    assert not mailbox.wait_newer(0, timeout=0.1) and time.monotonic() - start >= 0.1


def test_the_handle_reports_a_sync_running_past_its_timeout():
    spec = WorkerSpec(
        "math", feed=list, model="unused", params=SamplingParams(), config=RolloutConfig(), max_staleness=1
    )
    stream = ProcessStream(spec, SharedWeightMailbox({"w": torch.zeros(1)}))  # never started
    stream._shared[_SYNCING_SINCE] = time.monotonic() - 5.0  # as the worker mirrors a sync begun 5 s ago
    with pytest.raises(StreamError, match="took longer than sync_timeout_s=2 s"):
        stream.take(1, sync_timeout_s=2.0, poll_s=0.01)
    stream._shared[_SYNCING_SINCE] = math.nan
    assert stream.stats.episodes == 0 and stream.engine_version == -1


def test_a_worker_killed_in_the_middle_of_a_message_is_reported_not_waited_for():
    """A worker SIGKILLed while it wrote a group leaves half a message in the pipe; the learner's
    side reports the exit instead of waiting for the rest of it forever."""
    spec = WorkerSpec(
        "math", feed=list, model="unused", params=SamplingParams(), config=RolloutConfig(), max_staleness=1
    )
    stream = ProcessStream(spec, SharedWeightMailbox({"w": torch.zeros(1)}))
    stream._process = SimpleNamespace(is_alive=lambda: False, exitcode=-9, pid=None)  # as a killed worker leaves it
    threading.Thread(target=stream._receive, daemon=True).start()  # what start() runs beside the worker
    os.write(stream._out._writer.fileno(), struct.pack("!i", 11062) + b"\x80" * 100)  # a header and 100 bytes of it
    start = time.monotonic()
    with pytest.raises(StreamError, match=r"the rollout worker exited \(exit code -9\)"):
        stream.take(1, sync_timeout_s=60.0, poll_s=0.01)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    ("backend", "device", "visible", "expected"),
    [
        ("vllm", "cuda:1", "4,5,6", ("cuda", "5")),  # vLLM sees only the chosen GPU, as its first
        ("vllm", "cuda:1", None, ("cuda", "1")),
        ("vllm", "cpu", "4,5", ("cpu", None)),
        ("transformers", "cuda:1", "4,5", ("cuda:1", None)),  # takes the device as it is
    ],
)
def test_a_worker_on_a_second_gpu_is_shown_that_gpu(backend, device, visible, expected):
    spec = WorkerSpec(
        "math",
        list,
        "unused",
        SamplingParams(),
        RolloutConfig(),
        1,
        engine=EngineConfig(backend=backend),
        device=device,
    )
    pinned_spec, shown = pinned(spec, visible)
    assert (pinned_spec.device, shown) == expected


def test_a_worker_on_a_gpu_that_is_not_there_is_refused():
    spec = WorkerSpec("math", list, "unused", SamplingParams(), RolloutConfig(), 1, engine=EngineConfig("vllm"))
    with pytest.raises(StreamError, match="worker device cuda:2: only 2 GPUs are visible"):
        pinned(replace(spec, device="cuda:2"), "0,1")
