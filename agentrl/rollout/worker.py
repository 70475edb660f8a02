"""A rollout stream in its own process, so generation and the learner share no interpreter.

Owns the worker process and the learner's handle on it, ``ProcessStream``, which offers the
consumer side of ``RolloutStream`` (``start``, ``take``, ``stop``, ``stats``,
``engine_version``). The worker is spawned, not forked, and builds what it needs from a
picklable ``WorkerSpec``: its own tokenizer, engine and environments. It runs a
``RolloutStream`` on a thread; its main thread sends finished groups back over a queue and
mirrors the stream's counters into shared memory. Weights arrive through a
``SharedWeightMailbox``.

Failures reach the learner's side as a ``StreamError`` from ``take``: an error in the worker
(building its engine, an environment, the engine failing) with its one-line text; the worker
dying without a word (killed, crashed, even in the middle of sending a group) with its exit
code; a weight sync running longer than the caller's ``sync_timeout_s``. The worker exits
when asked to stop or when its parent dies. Knows nothing of learners or algorithms.
"""

from __future__ import annotations

import functools
import math
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.multiprocessing as mp

from agentrl.engines.base import SamplingParams
from agentrl.engines.config import EngineConfig
from agentrl.engines.mailbox import Mailbox, SharedWeightMailbox
from agentrl.rollout.scheduler import Group, RolloutConfig
from agentrl.rollout.stream import RolloutStream, StreamError, StreamStats
from agentrl.types import Task

_COUNTERS = ("generate_s", "sync_s", "idle_s", "syncs", "aborted_episodes", "episodes")
_VERSION, _SYNCING_SINCE = len(_COUNTERS), len(_COUNTERS) + 1  # the shared array's other two slots
_DEAD_GRACE_S = 2.0  # how long an exited worker's last messages may take to reach the inbox


@dataclass
class WorkerSpec:
    """Everything the worker builds its stream from; every field must pickle."""

    env: str
    feed: Callable[[int], Sequence[Task]]
    model: str
    params: SamplingParams
    config: RolloutConfig
    max_staleness: int
    in_flight: str = "continue"
    first_batch: int = 0
    env_args: dict[str, Any] = field(default_factory=dict)
    engine: EngineConfig = field(default_factory=EngineConfig)
    device: str = "auto"
    seed: int = 0
    torch_threads: int = 0  # 0 = torch's default
    batch_stride: int = 1  # one of N workers runs every N-th feed batch from first_batch


class ProcessStream:
    """The learner's handle on a rollout worker process."""

    def __init__(self, spec: WorkerSpec, mailbox: SharedWeightMailbox):
        self.spec, self.mailbox = spec, mailbox
        ctx = mp.get_context("spawn")
        self._ctx = ctx
        self._out: Any = ctx.Queue()
        self._stop = ctx.Event()
        self._shared: Any = ctx.Array("d", len(_COUNTERS) + 2, lock=False)
        self._shared[_VERSION], self._shared[_SYNCING_SINCE] = -1.0, math.nan
        self._process: Any = None
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._dead_since: float | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def stats(self) -> StreamStats:
        values = list(self._shared[: len(_COUNTERS)])
        return StreamStats(*values[:3], *(int(v) for v in values[3:]))  # type: ignore[arg-type]

    @property
    def engine_version(self) -> int:
        """The version of the weights the worker's engine samples with (-1 before it starts)."""
        return int(self._shared[_VERSION])

    def start(self) -> None:
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        spec, visible = pinned(self.spec, saved)
        args = (spec, self.mailbox, self._out, self._stop, self._shared, os.getpid())
        self._process = self._ctx.Process(target=_work, args=args, name="agentrl-rollout")
        try:
            if visible is not None:  # a spawned process takes its environment from ours at start
                os.environ["CUDA_VISIBLE_DEVICES"] = visible
            self._process.start()
        finally:
            if visible is not None:
                _restore("CUDA_VISIBLE_DEVICES", saved)
        threading.Thread(target=self._receive, name="agentrl-rollout-receiver", daemon=True).start()

    def _receive(self) -> None:
        """Move whole messages from the worker's queue to the inbox ``take`` reads. A worker
        killed while it wrote a message leaves this thread, not the learner, waiting for the
        rest of it forever (a daemon thread: it ends with the process)."""
        while True:
            try:
                self._inbox.put(self._out.get())
            except (EOFError, OSError, ValueError):  # the queue is gone
                return

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        if self._process is None:
            return
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5.0)

    def take(self, n: int, *, sync_timeout_s: float, poll_s: float = 0.05) -> list[Group]:
        """The next ``n`` finished groups, in the order they finished. Raises ``StreamError``
        if the worker failed or exited, or a weight sync has run longer than ``sync_timeout_s``."""
        groups: list[Group] = []
        while len(groups) < n:
            try:
                kind, payload = self._inbox.get(timeout=poll_s)
            except queue.Empty:
                self._check(sync_timeout_s)
                continue
            if kind == "error":
                raise StreamError(payload)
            groups.append(payload)
        return groups

    def _check(self, sync_timeout_s: float) -> None:
        since = self._shared[_SYNCING_SINCE]
        if not math.isnan(since) and time.monotonic() - since > sync_timeout_s:
            raise StreamError(f"a weight sync to the engine took longer than sync_timeout_s={sync_timeout_s:g} s")
        if self._process is not None and not self._process.is_alive():
            # whole messages it sent before it died reach the inbox within the grace; a cut one never does
            self._dead_since = self._dead_since if self._dead_since is not None else time.monotonic()
            if time.monotonic() - self._dead_since > _DEAD_GRACE_S:
                raise StreamError(f"the rollout worker exited (exit code {self._process.exitcode})")


def pinned(spec: WorkerSpec, visible: str | None) -> tuple[WorkerSpec, str | None]:
    """The spec and ``CUDA_VISIBLE_DEVICES`` a worker on ``cuda:N`` starts with.

    A backend that pins its device (``pins_device``, as vLLM does: it takes the first GPU it
    sees) is shown only GPU ``N`` (of those visible to the learner) and told ``cuda``. Other
    backends take ``cuda:N`` as it is.
    Returns ``visible`` None when the environment needs no change."""
    device = spec.device
    if not spec.engine.backend_info.pins_device or not device.startswith("cuda:"):
        return spec, None
    index = int(device.split(":", 1)[1])
    ids = [d.strip() for d in visible.split(",")] if visible else [str(i) for i in range(index + 1)]
    if index >= len(ids):
        raise StreamError(f"worker device {device}: only {len(ids)} GPUs are visible (CUDA_VISIBLE_DEVICES={visible})")
    return replace(spec, device="cuda"), ids[index]


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


# ---- the worker process -----------------------------------------------------------------------
def _work(spec: WorkerSpec, mailbox: SharedWeightMailbox, out: Any, stop: Any, shared: Any, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the learner's to handle; it stops us
    failed = False
    try:
        running = lambda: not stop.is_set() and os.getppid() == parent  # noqa: E731
        pump(build_stream(spec, mailbox), running, lambda group: out.put(("group", group)), math.inf, shared)
    except BaseException as exc:  # the learner's side reports it
        failed = True
        out.put(("error", failure_text(exc)))
    if not failed or stop.is_set() or os.getppid() != parent:
        out.cancel_join_thread()  # nobody will read the rest: exit without waiting to flush it


def pump(
    stream: RolloutStream,
    running: Callable[[], bool],
    send: Callable[[Group], None],
    sync_timeout_s: float,
    shared: Any = None,
) -> None:
    """Run ``stream`` while ``running()``, handing each finished group to ``send`` (and, with
    ``shared``, mirroring its counters there after each poll). A worker's loop, in a spawned
    process or a torch.distributed rank (``agentrl.rollout.remote``)."""
    stream.start()
    try:
        while running():
            group = stream.poll(sync_timeout_s=sync_timeout_s, timeout=0.05)
            if shared is not None:
                _mirror(stream, shared)
            if group is not None:
                send(group)
    finally:
        stream.stop()


def failure_text(exc: BaseException) -> str:
    """A worker's failure in one line: a ``StreamError``'s own text, or the exception's first line."""
    return str(exc) if isinstance(exc, StreamError) else _failed(exc)


def build_stream(spec: WorkerSpec, mailbox: Mailbox) -> RolloutStream:
    """The stream a worker runs: its own tokenizer, engine and environments, built from ``spec``."""
    from agentrl.engines.factory import make_engine
    from agentrl.engines.loading import load_tokenizer
    from agentrl.envs import load as load_env

    if spec.torch_threads:
        torch.set_num_threads(spec.torch_threads)
    tokenizer = load_tokenizer(spec.model)
    engine = make_engine(spec.engine, spec.model, tokenizer, device=spec.device, seed=spec.seed)
    env_factory = functools.partial(load_env(spec.env), **spec.env_args)
    return RolloutStream(
        env_factory,
        spec.feed,
        engine,
        tokenizer,
        spec.params,
        spec.config,
        mailbox,
        max_staleness=spec.max_staleness,
        in_flight=spec.in_flight,
        first_batch=spec.first_batch,
        batch_stride=spec.batch_stride,
        env_id=spec.env,
    )


def _mirror(stream: RolloutStream, shared: Any) -> None:
    """Copy the stream's counters, engine version and sync start into shared memory."""
    for i, name in enumerate(_COUNTERS):
        shared[i] = float(getattr(stream.stats, name))
    shared[_VERSION] = float(stream.engine_version)
    since = stream.syncing_since
    shared[_SYNCING_SINCE] = math.nan if since is None else time.monotonic() - (time.perf_counter() - since)


def _failed(exc: BaseException) -> str:
    return "the rollout worker failed: " + "".join(traceback.format_exception_only(exc)).strip().splitlines()[0]
