"""A device audit that runs on a CPU: every tensor gets a virtual device, and an operation that
mixes devices the way a GPU would refuse fails at once, naming the operation and the devices.

Owns ``DeviceAudit``, a torch function mode. Inside it, data meant for CUDA stays on the CPU,
but each tensor carries the device it would be on (only CUDA is virtual; ``meta`` and the CPU
are real): a tensor made without a device is on ``cpu`` (as on a GPU machine), one made with
``device=`` or moved with ``.to`` / ``.cuda`` / ``.cpu`` is where it was sent, and an
operation's result is where its inputs are. ``tensor.device`` reports the virtual device, so
code that allocates "on the same device as x" is followed faithfully. Refused, as CUDA refuses
them: tensors of two devices in one operation (a 0-dim CPU tensor beside a CUDA one is allowed;
so is indexing a CUDA tensor with CPU indices, not the reverse), ``.numpy()`` of a CUDA tensor,
and a random generator of another device than the tensor it fills. The mode follows into threads
started inside it; ``torch.save`` / ``torch.load`` keep devices (``map_location`` included);
``torch.Generator(device=...)`` makes a CPU generator that remembers its virtual device;
``nn.Parameter`` keeps its data's device; and ``torch.cuda`` answers as on a machine with one
GPU (available, one device, no-op synchronisation, empty RNG state), so code takes the branches
it takes on a GPU. What the autograd engine calls back in the backward (tensor and gradient
hooks, where DeepSpeed's ZeRO reduces gradients; a custom ``autograd.Function``'s backward, where
ZeRO-3 fetches parameters; saved-tensor hooks, where gradient checkpointing recomputes) runs
inside the audit too, given gradients on the device of the tensor they are for. Collectives
(``torch.distributed.all_reduce`` and the like) take CUDA tensors only, as NCCL does, whatever
the real process group is. What it does not see: code that never calls torch in Python (a C++
extension's own allocations), DeepSpeed's collectives through the function references it keeps
(``all_gather_into_tensor``, ``reduce_scatter_tensor``), and other processes.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

CPU = torch.device("cpu")
_TAG = "_agentrl_virtual_device"


class DeviceMismatch(AssertionError):
    """An operation that the virtual device would refuse."""


def device_of(tensor: torch.Tensor) -> torch.device:
    """The device ``tensor`` is on as the audited code sees it: the virtual CUDA device the audit
    placed it on, else its real one (``cpu``, or ``meta`` for a tensor without data)."""
    virtual = getattr(tensor, _TAG, None)
    if virtual is not None:
        return virtual
    with torch._C.DisableTorchFunction():  # the real device, without asking the audit again
        return tensor.device


def _virtual(device: torch.device) -> bool:
    """Whether the audit stands in for ``device``: CUDA only. Every other device (``meta``, on which
    transformers builds a model before loading its weights) is real, data and all."""
    return device.type == "cuda"


def _normalize(device: Any) -> torch.device:
    device = torch.device(device)
    return torch.device("cuda", 0) if device.type == "cuda" and device.index is None else device


def _set(tensor: Any, device: torch.device) -> None:
    if isinstance(tensor, torch.Tensor):
        if _virtual(device):
            setattr(tensor, _TAG, device)
        elif hasattr(tensor, _TAG):
            delattr(tensor, _TAG)


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _map(value: Any, fn: Callable[[torch.Tensor], None]) -> None:
    for tensor in _tensors(value):
        fn(tensor)


class _Generator(torch.Generator):
    """A CPU generator that remembers the virtual device it was made for."""

    virtual_device: torch.device

    def __new__(cls, device: Any = "cpu") -> _Generator:
        generator = super().__new__(cls)  # the device is torch's __new__'s argument: not passed on
        generator.virtual_device = _normalize(device)
        return generator

    def __init__(self, device: Any = "cpu") -> None:
        super().__init__()


_GET = {name: getattr(torch.Tensor, name).__get__ for name in ("device", "grad", "data", "is_cuda", "is_cpu")}
_SET = {name: getattr(torch.Tensor, name).__set__ for name in ("data", "grad")}
_MOVES = {torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu}
# the autograd engine calls Python (tensor hooks, a custom Function's backward, saved-tensor hooks)
# where no torch function mode is active: the audit runs each such callback inside itself
_HOOKS = {torch.Tensor.register_hook, torch.Tensor.register_post_accumulate_grad_hook}
_OUTPUTS = "_agentrl_output_devices"  # on a custom Function's backward node: its outputs' devices
_INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}
# calls that may take tensors of two devices: a copy between devices, and questions about tensors
_ACROSS = {
    torch.Tensor.copy_,
    torch.Tensor.__deepcopy__,  # its memo holds tensors copied before, of any device
    torch._has_compatible_shallow_copy_type,
    torch.Tensor.__repr__,
    torch.Tensor.__format__,
}


class _Mode(TorchFunctionMode):
    """The audit's torch function mode, one per thread, all answering to one ``DeviceAudit``."""

    def __init__(self, audit: DeviceAudit) -> None:
        super().__init__()
        self.audit = audit

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        return self.audit.handle(func, args, kwargs or {})


class DeviceAudit:
    """``with DeviceAudit("cuda:0") as audit:``: run code as if ``cuda:0`` existed; a device
    mistake raises ``DeviceMismatch``. ``audit.place(module_or_tensor)`` puts what was built
    outside the audit on the virtual device; ``audit.operations`` counts the operations seen and
    ``audit.threads`` holds the threads they ran on."""

    def __init__(self, device: str = "cuda:0") -> None:
        self.device = _normalize(device)
        self.operations = 0
        self.threads: set[int] = set()  # the threads whose torch calls the audit saw
        self._saved: dict[str, Any] = {}
        self._patches = contextlib.ExitStack()

    # ---- entering and leaving: the mode, threads, torch.save / torch.load, torch.Generator

    def __enter__(self) -> DeviceAudit:
        self._patches.__enter__()
        audit = self

        def run(thread: threading.Thread) -> None:  # a thread started inside the audit is audited too
            with _Mode(audit):
                _THREAD_RUN(thread)

        self._patch(threading.Thread, "run", run)
        self._patch(torch, "save", self._save)
        self._patch(torch, "load", self._load)
        self._patch(torch, "Generator", _Generator)
        new_parameter = torch.nn.Parameter.__new__

        def parameter(cls: type, data: torch.Tensor | None = None, requires_grad: bool = True) -> Any:
            made: torch.Tensor = new_parameter(cls, data, requires_grad)  # made in C++, out of the mode's sight
            _set(made, device_of(data) if data is not None else CPU)
            return made

        self._patch(torch.nn.Parameter, "__new__", parameter)
        self._patch_autograd()
        self._patch_collectives()
        for name, answer in _ONE_GPU.items():  # torch.cuda answers as on a machine with one GPU
            self._patch(torch.cuda, name, answer)
        self._patches.enter_context(_Mode(self))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._patches.__exit__(*exc)

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        original = getattr(owner, name)
        setattr(owner, name, replacement)
        self._patches.callback(setattr, owner, name, original)

    def place(self, obj: Any, device: str | torch.device | None = None) -> Any:
        """Put a module's parameters and buffers, or a tensor, on ``device`` (the audit's own by
        default) without moving data; returns ``obj``."""
        target = _normalize(device or self.device)
        tensors = [*obj.parameters(), *obj.buffers()] if isinstance(obj, torch.nn.Module) else list(_tensors(obj))
        for tensor in tensors:
            _set(tensor, target)
        return obj

    # ---- the mode

    def handle(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """One torch call, checked and run on the CPU, its results placed."""
        self.operations += 1
        self.threads.add(threading.get_ident())
        if func == _GET["device"]:
            return device_of(args[0])
        if func == _GET["is_cuda"]:
            return device_of(args[0]).type == "cuda"
        if func == _GET["is_cpu"]:
            return device_of(args[0]).type == "cpu"
        if func in (_GET["grad"], _GET["data"]):
            result = func(*args, **kwargs)
            if result is not None:
                _set(result, device_of(args[0]))
            return result
        if func in (_SET["data"], _SET["grad"]):
            if args[1] is not None and func == _SET["grad"] and device_of(args[1]) != device_of(args[0]):
                raise self._mismatch("assigning .grad", [device_of(args[0]), device_of(args[1])])
            result = func(*args, **kwargs)
            if func == _SET["data"]:
                _set(args[0], device_of(args[1]))
            return result
        if func in _MOVES:
            return self._move(func, args, kwargs)
        if func in _HOOKS:
            return func(args[0], self._audited(args[1], device_of(args[0])), *args[2:], **kwargs)
        if func is torch.Tensor.numpy and device_of(args[0]).type != "cpu":
            raise self._mismatch(f"numpy() of a tensor on {device_of(args[0])}", [])
        target = device_of(args[0]) if func in _ACROSS else self._check(func, args, kwargs)
        if "device" in kwargs and kwargs["device"] is not None:
            target = _normalize(kwargs["device"])
            if _virtual(target):  # made on the CPU, tagged below
                kwargs = {**kwargs, "device": CPU}
        result = func(*args, **kwargs)
        inputs = {id(t) for t in _tensors((args, kwargs))}
        _map(result, lambda t: None if id(t) in inputs else _set(t, target))
        return result

    def _check(self, func: Any, args: tuple, kwargs: dict) -> torch.device:
        """The device an operation runs on, or ``DeviceMismatch``."""
        if func in _INDEXING:
            base = device_of(args[0])
            index = [device_of(t) for t in _tensors(args[1]) if device_of(t) != base and device_of(t) != CPU]
            value = [
                device_of(t) for t in _tensors(args[2:]) if device_of(t) != base and (t.dim() or device_of(t) != CPU)
            ]
            if index or value:
                raise self._mismatch(_name(func), [base, *index, *value])
            return base
        found = {device_of(t) for t in _tensors((args, kwargs)) if device_of(t) != CPU or t.dim() > 0}
        generator = kwargs.get("generator")
        if isinstance(generator, _Generator):
            found.add(generator.virtual_device)
        if len(found) > 1:
            raise self._mismatch(_name(func), sorted(found, key=str))
        return found.pop() if found else CPU

    def _move(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """``.to`` / ``.cuda`` / ``.cpu``: the data stays, the result is on the target."""
        tensor, rest = args[0], list(args[1:])
        target: torch.device | None = None
        if func is torch.Tensor.cpu:
            target = CPU
        elif func is torch.Tensor.cuda:
            index = rest[0] if rest else kwargs.get("device")
            target = _normalize(
                "cuda" if index is None else torch.device("cuda", index) if isinstance(index, int) else index
            )
            rest, kwargs = [], {k: v for k, v in kwargs.items() if k in ("non_blocking", "memory_format")}
        else:
            if rest and isinstance(rest[0], torch.Tensor):  # .to(other): other's device and dtype
                rest[0], target = rest[0].dtype, device_of(rest[0])
            copy = kwargs.pop("copy", False)
            if len(rest) > 3:  # .to(device, dtype, non_blocking, copy)
                copy = rest.pop(3)
            device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*rest, **kwargs)
            if target is None:
                target = device_of(tensor) if device is None else _normalize(device)
            rest = []
            kwargs = {"dtype": dtype, "non_blocking": non_blocking, "memory_format": memory_format, "copy": copy}
            kwargs = {k: v for k, v in kwargs.items() if v is not None and v is not False}
        assert target is not None
        real = CPU if _virtual(target) else target  # where the data goes: the CPU stands in for CUDA
        result = tensor.to(real, *rest, **kwargs)
        if result is tensor and target != device_of(tensor):
            result = tensor.clone()  # a move makes a new tensor; the source stays where it was
        _set(result, target)
        return result

    def _mismatch(self, what: str, devices: list[torch.device]) -> DeviceMismatch:
        where = _caller()
        on = " and ".join(str(d) for d in devices)
        return DeviceMismatch(f"{what}: tensors on {on}" + (f", at {where}" if where else ""))

    # ---- the autograd engine's callbacks, threads, files, generators

    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        """The audit's mode for code the autograd engine calls, unless it is active already."""
        if any(isinstance(mode, _Mode) for mode in _mode_stack()):
            yield
        else:
            with _Mode(self):
                yield

    def _audited(self, hook: Callable[..., Any], device: torch.device) -> Callable[..., Any]:
        """``hook``, run inside the audit wherever the autograd engine calls it. What it is given
        (a gradient the engine made in C++, or the parameter) is on ``device``, the device of the
        tensor the hook was registered on."""

        def run(tensor: torch.Tensor) -> Any:
            _set(tensor, device)
            with self._inside():
                return hook(tensor)

        return run

    def _patch_autograd(self) -> None:
        """A custom ``autograd.Function`` (DeepSpeed's ZeRO-3 fetches parameters in one) runs its
        backward inside the audit, given gradients on its outputs' devices; saved-tensor hooks
        (gradient checkpointing's recomputation) run inside it too."""
        audit, apply, backward = self, _FUNCTION_APPLY, _BACKWARD_APPLY

        def function_apply(cls: type, *args: Any, **kwargs: Any) -> Any:
            outputs = apply(cls, *args, **kwargs)
            node = next((t.grad_fn for t in _tensors(outputs) if t.grad_fn is not None), None)
            if isinstance(node, torch.autograd.function.BackwardCFunction):  # not a C++ view node
                setattr(node, _OUTPUTS, [device_of(t) for t in _tensors(outputs)])
            return outputs

        def backward_apply(node: Any, *grads: Any) -> Any:
            for grad, device in zip(grads, getattr(node, _OUTPUTS, []), strict=False):
                _set(grad, device)
            with audit._inside():
                return backward(node, *grads)

        def push(pack: Callable[..., Any], unpack: Callable[..., Any]) -> None:
            _PUSH_SAVED_HOOKS(audit._run_inside(pack), audit._run_inside(unpack))

        self._patch(torch.autograd.Function, "apply", classmethod(function_apply))
        self._patch(torch.autograd.function.BackwardCFunction, "apply", backward_apply)
        self._patch(torch._C._autograd, "_push_saved_tensors_default_hooks", push)

    def _patch_collectives(self) -> None:
        """torch.distributed's tensor collectives take CUDA tensors only, as NCCL does (the process
        group itself may be gloo: the data is on the CPU)."""
        if not torch.distributed.is_available():
            return
        c10d, pickling = torch.distributed.distributed_c10d, threading.local()
        for name in _COLLECTIVES + _OBJECT_COLLECTIVES:
            original = getattr(c10d, name)

            def checked(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
                if _name in _OBJECT_COLLECTIVES:  # it picks the group's device itself
                    pickling.depth = getattr(pickling, "depth", 0) + 1
                    try:
                        return _original(*args, **kwargs)
                    finally:
                        pickling.depth -= 1
                elsewhere = {device_of(t) for t in _tensors((args, kwargs)) if device_of(t).type != "cuda"}
                if elsewhere and not getattr(pickling, "depth", 0):
                    raise self._mismatch(f"{_name} (NCCL takes CUDA tensors only)", sorted(elsewhere, key=str))
                return _original(*args, **kwargs)

            for owner in (c10d, torch.distributed):
                if getattr(owner, name, None) is original:
                    self._patch(owner, name, checked)

    def _run_inside(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            with self._inside():
                return fn(*args)

        return run

    def _save(self, obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        devices = [device_of(t) for t in _tensors(obj)]
        if isinstance(f, str | bytes) or hasattr(f, "__fspath__"):
            self._saved[str(f)] = devices
        _ORIGINAL_SAVE(obj, f, *args, **kwargs)

    def _load(self, f: Any, *args: Any, map_location: Any = None, **kwargs: Any) -> Any:
        located = _normalize(map_location) if isinstance(map_location, str | torch.device) else None
        result = _ORIGINAL_LOAD(f, *args, **{**kwargs, "map_location": CPU if located is not None else map_location})
        saved = self._saved.get(str(f)) if located is None else None
        tensors = list(_tensors(result))
        for i, tensor in enumerate(tensors):
            if located is not None:
                _set(tensor, located)
            elif saved is not None and i < len(saved):
                _set(tensor, saved[i])
        return result


_ORIGINAL_SAVE, _ORIGINAL_LOAD = torch.save, torch.load
_ONE_GPU: dict[str, Callable[..., Any]] = {
    "is_available": lambda: True,
    "is_bf16_supported": lambda including_emulation=True: True,
    "device_count": lambda: 1,
    "current_device": lambda: 0,
    "set_device": lambda device: None,
    "synchronize": lambda device=None: None,
    "empty_cache": lambda: None,
    "get_rng_state_all": lambda: [],
    "set_rng_state_all": lambda states: None,
}
_THREAD_RUN = threading.Thread.run
_BACKWARD_APPLY = torch.autograd.function.BackwardCFunction.apply
_FUNCTION_APPLY = torch.autograd.Function.__dict__["apply"].__func__  # the classmethod's function
_PUSH_SAVED_HOOKS = torch._C._autograd._push_saved_tensors_default_hooks
_mode_stack = torch.overrides._get_current_function_mode_stack
_COLLECTIVES = (
    "all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
    "reduce_scatter_tensor", "all_to_all_single", "all_to_all", "gather", "scatter", "send", "recv",
    "isend", "irecv",
)  # fmt: skip
_OBJECT_COLLECTIVES = ("all_gather_object", "broadcast_object_list", "gather_object", "scatter_object_list")


def _name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _caller() -> str:
    """The innermost frame outside torch and this module: the code that made the mistake."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "/torch/" not in frame.filename and not frame.filename.endswith("testing/devices.py"):
            return f"{frame.filename}:{frame.lineno} ({frame.name})"
    return ""
