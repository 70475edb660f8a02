"""Rollout workers as torch.distributed ranks, on this machine or on others.

Owns the three parts of ``asynchronous.workers=N``: the learner's handle on the worker ranks
(``RankStream``: the consumer side of ``RolloutStream``: ``start``, ``take``, ``stop``,
``stats``, ``engine_version``), the weights' way to them (``BroadcastMailbox``: published weights
are broadcast from rank 0 over a process group of their own, gloo on CPU and NCCL on GPU), and a
worker rank's loop (``serve``).

Worker i of N (ranks 1..N; the learner is rank 0) runs a ``RolloutStream`` on its own engine over
feed batches ``first + i, first + i + N, ...``, so the workers never repeat a batch and each batch
keeps the staleness bound and the seeding of one stream. Each finished group goes to rank 0 with
``send_object_list`` on the default group; rank 0 receives from each worker on a thread of its
own. A worker's error (its engine, an environment) reaches ``take`` as a ``StreamError`` with its
one-line text; a worker that dies is the launcher's to report (it stops every rank and names the
one that died). Knows nothing of learners or algorithms.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from agentrl.engines.mailbox import WeightMailbox
from agentrl.rollout.scheduler import Group
from agentrl.rollout.stream import StreamError, StreamStats
from agentrl.rollout.worker import WorkerSpec, build_stream, failure_text, pump

_STOP = -1  # a version header that tells the workers to stop


def weights_group() -> Any:
    """The process group weights travel on (every rank calls this once, in the same order)."""
    return dist.new_group(backend="nccl" if torch.cuda.is_available() else "gloo")


def _device() -> torch.device:
    """Where broadcast weights live: this rank's GPU under NCCL, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


Layout = list[tuple[str, tuple[int, ...], torch.dtype]]  # each weight's name, shape and dtype, by name


class BroadcastMailbox:
    """Rank 0's side of the weights' way to the workers: ``publish`` broadcasts a version header,
    then the weights flattened one dtype at a time; ``close`` broadcasts the stop header."""

    def __init__(self, template: Mapping[str, torch.Tensor], group: Any):
        self.group, self.version = group, -1
        self.layout: Layout = [(name, tuple(template[name].shape), template[name].dtype) for name in sorted(template)]
        self._layout_sent = False

    def publish(self, state: Mapping[str, Any], version: int) -> None:
        if version <= self.version:
            raise ValueError(f"weights version {version} published after version {self.version}")
        self._send_layout()
        _header(version, self.group)
        device = _device()
        for run in _runs([(name, state[name].detach()) for name, _, _ in self.layout]):
            dist.broadcast(_flatten_dense_tensors([t.to(device) for _, t in run]), 0, group=self.group)
        self.version = version

    def close(self) -> None:
        self._send_layout()
        _header(_STOP, self.group)

    def _send_layout(self) -> None:
        if not self._layout_sent:  # once, before the first header: the workers size their buffers by it
            dist.broadcast_object_list([self.layout], src=0, group=self.group)
            self._layout_sent = True


def _header(version: int, group: Any) -> int:
    header = torch.tensor([version], dtype=torch.long, device=_device())
    dist.broadcast(header, 0, group=group)
    return int(header.item())


def _runs(named: list[tuple[str, torch.Tensor]]) -> list[list[tuple[str, torch.Tensor]]]:
    """``named`` split by dtype, in order of first appearance (rank 0 and the workers agree)."""
    runs: dict[torch.dtype, list[tuple[str, torch.Tensor]]] = {}
    for name, t in named:
        runs.setdefault(t.dtype, []).append((name, t))
    return list(runs.values())


def _receive(layout: Layout, group: Any) -> tuple[dict[str, torch.Tensor], int] | None:
    """A worker's side of one ``publish``: the weights and their version, or None at the stop."""
    version = _header(0, group)
    if version == _STOP:
        return None
    device = _device()
    state: dict[str, torch.Tensor] = {}
    for run in _runs([(name, torch.empty(shape, dtype=dtype, device=device)) for name, shape, dtype in layout]):
        like = [t for _, t in run]
        flat = _flatten_dense_tensors(like)
        dist.broadcast(flat, 0, group=group)
        state.update(zip([name for name, _ in run], _unflatten_dense_tensors(flat, like), strict=True))
    return state, version


# ---- rank 0: the learner's handle -------------------------------------------------------------
class RankStream:
    """The learner's handle on ``workers`` rollout worker ranks (1..workers)."""

    def __init__(self, workers: int, mailbox: BroadcastMailbox):
        self.workers, self.mailbox = workers, mailbox
        self._inbox: queue.Queue[tuple[str, Any, int]] = queue.Queue()
        self._stats: dict[int, tuple[StreamStats, int]] = {}
        self._threads: list[threading.Thread] = []

    @property
    def stats(self) -> StreamStats:
        total = StreamStats()
        for stats, _ in list(self._stats.values()):
            for f in dataclasses.fields(StreamStats):
                setattr(total, f.name, getattr(total, f.name) + getattr(stats, f.name))
        return total

    @property
    def engine_version(self) -> int:
        """The oldest weights version a worker samples with (-1 before every worker reported)."""
        if len(self._stats) < self.workers:
            return -1
        return min(version for _, version in self._stats.values())

    def start(self) -> None:
        for rank in range(1, self.workers + 1):
            thread = threading.Thread(
                target=self._receive, args=(rank,), name=f"agentrl-rollout-rank{rank}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _receive(self, rank: int) -> None:
        while True:
            box: list[Any] = [None]
            dist.recv_object_list(box, src=rank)
            kind, payload, stats, version = box[0]
            self._stats[rank] = (stats, version)
            if kind == "done":
                return
            self._inbox.put((kind, payload, rank))

    def take(self, n: int, *, sync_timeout_s: float, poll_s: float = 0.05) -> list[Group]:
        """The next ``n`` finished groups from any worker, in the order they arrived. Raises
        ``StreamError`` with a worker's own error (a worker checks its weight syncs against
        ``sync_timeout_s`` itself)."""
        groups: list[Group] = []
        while len(groups) < n:
            try:
                kind, payload, rank = self._inbox.get(timeout=poll_s)
            except queue.Empty:
                continue
            if kind == "error":
                raise StreamError(f"rollout worker rank {rank}: {payload}")
            groups.append(payload)
        return groups

    def stop(self, timeout: float = 60.0) -> None:
        """Tell the workers to stop and wait for each one's last word."""
        self.mailbox.close()
        for thread in self._threads:
            thread.join(timeout)


# ---- a worker rank -------------------------------------------------------------------------------
def serve(spec: WorkerSpec, index: int, count: int, group: Any, sync_timeout_s: float) -> None:
    """Worker ``index`` of ``count``: build the stream, run it on the weights rank 0 broadcasts,
    send each finished group to rank 0, until rank 0 says stop. After an error it sends the error
    and waits for the stop, so that rank 0 reports it (in one line) before any rank exits."""
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0, group=group)
    layout: Layout = box[0]
    mailbox, stopped = WeightMailbox(), threading.Event()
    stream: Any = None

    def send(kind: str, payload: Any) -> None:
        stats = dataclasses.replace(stream.stats) if stream is not None else StreamStats()
        version = stream.engine_version if stream is not None else -1
        dist.send_object_list([(kind, payload, stats, version)], dst=0)

    first = _receive(layout, group)  # the run's weights at its first step (a resumed run's too)
    if first is not None:
        mailbox.publish(*first)
        threading.Thread(target=_weights, args=(layout, group, mailbox, stopped), daemon=True).start()
        try:
            stream = build_stream(dataclasses.replace(spec, first_batch=first[1] + index, batch_stride=count), mailbox)
            pump(stream, lambda: not stopped.is_set(), lambda group: send("group", group), sync_timeout_s)
        except BaseException as exc:  # rank 0 reports it
            send("error", failure_text(exc))
            stopped.wait()
    send("done", None)


def _weights(layout: Layout, group: Any, mailbox: WeightMailbox, stopped: threading.Event) -> None:
    """A worker's receiving thread: each broadcast into ``mailbox``, until the stop header."""
    while (received := _receive(layout, group)) is not None:
        mailbox.publish(*received)
    stopped.set()
    mailbox.wake()
