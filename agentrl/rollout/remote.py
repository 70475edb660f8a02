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

import contextlib
import dataclasses
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from agentrl.engines.mailbox import WeightMailbox
from agentrl.rollout.scheduler import Group
from agentrl.rollout.stream import StreamError, StreamStats
from agentrl.rollout.worker import WorkerSpec, build_stream, failure_text, pump

_STOP = -1  # a version header that tells the workers to stop


def weights_group(timeout_min: float) -> Any:
    """The process group weights travel on (every rank calls this once, in the same order); a
    worker waits on it through each whole step of rank 0's, so it takes the run's timeout."""
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    return dist.new_group(backend=backend, timeout=timedelta(minutes=timeout_min))


def _device() -> torch.device:
    """Where broadcast weights live: this rank's GPU under NCCL, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@dataclass
class Message:
    """What a worker sends rank 0: a finished group, an error's one line, or its last word
    (``done``), with its stream's counters and the weights version its engine holds."""

    kind: str  # group, error or done
    payload: Any
    stats: StreamStats
    engine_version: int


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
        for run in _runs([(name, _as(state[name], shape, dtype)) for name, shape, dtype in self.layout]):
            dist.broadcast(_flatten_dense_tensors([t.to(device) for _, t in run]), 0, group=self.group)
        self.version = version

    def close(self) -> None:
        self._send_layout()
        _header(_STOP, self.group)

    def _send_layout(self) -> None:
        if not self._layout_sent:  # once, before the first header: the workers size their buffers by it
            dist.broadcast_object_list([self.layout], src=0, group=self.group)
            self._layout_sent = True


def _as(tensor: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` as the layout the workers expect (a shape that changed is an error, not a hang)."""
    if tuple(tensor.shape) != shape:
        raise ValueError(f"a weight changed shape from {shape} to {tuple(tensor.shape)}; the workers cannot load it")
    return tensor.detach().to(dtype)


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
        self._lost = False

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
        """Worker ``rank``'s messages into the inbox, until its last one (or a failure to receive,
        which ``take`` reports)."""
        try:
            while True:
                box: list[Any] = [None]
                dist.recv_object_list(box, src=rank)
                message: Message = box[0]
                self._stats[rank] = (message.stats, message.engine_version)
                if message.kind == "done":
                    return
                self._inbox.put((message.kind, message.payload, rank))
        except Exception as exc:
            self._lost = True  # its peer is gone: stop() must not broadcast to it
            self._inbox.put(("error", f"receiving from it failed ({failure_text(exc)})", rank))

    def take(self, n: int, *, sync_timeout_s: float, poll_s: float = 0.05) -> list[Group]:
        """The next ``n`` finished groups from any worker, in the order they arrived. Raises
        ``StreamError`` with a worker's own error (a worker checks its weight syncs against
        ``sync_timeout_s`` itself)."""
        groups: list[Group] = []
        while len(groups) < n:
            try:
                kind, payload, rank = self._inbox.get(timeout=poll_s)
            except queue.Empty:
                if not any(t.is_alive() for t in self._threads):
                    raise StreamError("every rollout worker rank has stopped") from None
                continue
            if kind == "error":
                raise StreamError(f"rollout worker rank {rank}: {payload}")
            groups.append(payload)
        return groups

    def stop(self, timeout: float = 60.0) -> None:
        """Tell the workers to stop and wait for each one's last word (not after a worker was lost:
        a broadcast to a rank that is gone fails inside gloo; the launcher stops the rest)."""
        if self._lost:
            return
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
        dist.send_object_list([Message(kind, payload, stats, version)], dst=0)

    first = _receive(layout, group)  # the run's weights at its first step (a resumed run's too)
    if first is not None:
        mailbox.publish(*first)
        failed: list[BaseException] = []
        threading.Thread(target=_weights, args=(layout, group, mailbox, stopped, failed), daemon=True).start()
        try:
            stream = build_stream(dataclasses.replace(spec, first_batch=first[1] + index, batch_stride=count), mailbox)
            pump(stream, lambda: not stopped.is_set(), lambda group: send("group", group), sync_timeout_s)
            if failed:
                raise failed[0]
        except BaseException as exc:  # rank 0 reports it
            try:
                send("error", failure_text(exc))
            except Exception:  # rank 0 is gone (what failed was sending to it): the launcher reports it
                return
            stopped.wait()
    with contextlib.suppress(Exception):  # rank 0 may be gone once it has what it needs
        send("done", None)


def _weights(
    layout: Layout, group: Any, mailbox: WeightMailbox, stopped: threading.Event, failed: list[BaseException]
) -> None:
    """A worker's receiving thread: each broadcast into ``mailbox``, until the stop header; a
    failure to receive (a timeout) stops the worker's loop, which reports it to rank 0."""
    try:
        while (received := _receive(layout, group)) is not None:
            mailbox.publish(*received)
    except Exception as exc:
        failed.append(StreamError(f"receiving weights failed ({failure_text(exc)})"))
    stopped.set()
    mailbox.wake()
