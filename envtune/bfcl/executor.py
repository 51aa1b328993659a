"""A safe executor over the official BFCL backends: one `ToolSession` per episode.

What the official executor does and we keep: fresh backend instances per entry loaded from a deep
copy of the scenario, the public methods of the involved classes as the tools (a later class wins a
name clash), and the exact result strings. What we change: calls are parsed, never `eval`ed; only the
public tool methods can be reached; arguments are literal and bounded; each call has a time limit;
process-global numeric precision is restored after every call; and the instances belong to the
session object, so they are freed with it instead of living in module globals forever.
"""

from __future__ import annotations

import copy
import ctypes
import decimal
import inspect
import json
import signal
import sys
import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator, Mapping

import mpmath

from envtune.bfcl.backends import STATELESS_CLASSES, backend_class
from envtune.bfcl.calls import (
    DEFAULT_LIMITS,
    CallError,
    CallLimits,
    ParsedCall,
    ToolCall,
    check_int_power,
    check_tool_call,
    parse_call,
)

ERROR_PREFIX = "Error during execution: "

# The official executor refuses these names before evaluating a call.
REFUSED_NAMES = frozenset({"kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run"})

# MathAPI arguments whose cost grows with their value (digits of precision, size of an integer power).
MAX_PRECISION_DIGITS = 10_000
MAX_POWER_RESULT_BITS = 1 << 20


class CallTimeout(Exception):
    """A tool call ran past its time limit."""


def stringify_result(result: Any) -> str:
    """The official rule: str kept, dict -> json.dumps (str() if not serializable), else str()."""
    if type(result) is str:
        return result
    if type(result) is dict:
        try:
            return json.dumps(result)
        except Exception:
            return str(result)
    return str(result)


_PUBLIC_METHODS: dict[type, tuple[str, ...]] = {}


def _public_method_names(instance: Any) -> tuple[str, ...]:
    """Public bound methods of a backend instance, found the way the official executor finds them
    (once per class: the set depends on the class only)."""
    cls = type(instance)
    if cls not in _PUBLIC_METHODS:
        _PUBLIC_METHODS[cls] = tuple(
            name for name, _ in inspect.getmembers(instance, predicate=inspect.ismethod)
            if not name.startswith("_")
        )
    return _PUBLIC_METHODS[cls]


@lru_cache(maxsize=None)
def _positional_parameters(function: Callable) -> tuple[inspect.Parameter, ...]:
    """Parameters that can be given by position, `self` included (cached per function, not per
    bound method, so the cache never keeps an instance alive)."""
    return tuple(
        parameter for parameter in inspect.signature(function).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    )


def _too_many_positional(method: Callable, given: int) -> str:
    """Python's own message for a call with too many positional arguments (counting `self`)."""
    parameters = _positional_parameters(method.__func__)
    most = len(parameters)
    least = sum(parameter.default is parameter.empty for parameter in parameters)
    takes = f"from {least} to {most}" if least != most else str(most)
    plural = "" if most == 1 else "s"
    return f"{method.__qualname__}() takes {takes} positional argument{plural} but {given + 1} were given"


def bind_arguments(method: Callable, call: ParsedCall) -> dict[str, Any]:
    """Name the positional arguments of a parsed call through the method's signature."""
    if not call.args:
        return dict(call.kwargs)
    parameters = _positional_parameters(method.__func__)[1:]
    if len(call.args) > len(parameters):
        raise CallError(_too_many_positional(method, len(call.args)))
    arguments = {parameter.name: value for parameter, value in zip(parameters, call.args)}
    for key, value in call.kwargs.items():
        if key in arguments:
            raise CallError(f"{method.__qualname__}() got multiple values for argument '{key}'")
        arguments[key] = value
    return arguments


def _check_cost(class_name: str, tool: str, arguments: Mapping[str, Any]) -> None:
    """Refuse MathAPI arguments that would make a single call run for minutes."""
    if class_name != "MathAPI":
        return
    precision = arguments.get("precision")
    if isinstance(precision, (int, float)) and precision > MAX_PRECISION_DIGITS:
        raise CallError(f"precision {precision} is above the limit of {MAX_PRECISION_DIGITS} digits")
    base, exponent = arguments.get("base"), arguments.get("exponent")
    if tool == "power" and type(base) is int and type(exponent) is int:
        check_int_power(base, exponent, MAX_POWER_RESULT_BITS)


class CallTimer:
    """Per-call time limit that can stop the pure-Python backends between two bytecodes.

    On the main thread SIGALRM does it: the handler is installed once around a batch of calls
    (installing it is the costly part) and each call arms its own timer. Signals only reach the main
    thread, so on any other thread (an event loop's executor) a timer thread raises the timeout in the
    calling thread instead. Neither stops a long C call (a huge integer power): the static limits on
    arguments are the protection there.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._signals = False  # the main thread's SIGALRM handler is installed
        self._watchdog: threading.Timer | None = None
        self._fired = False
        self._lock = threading.Lock()

    def _interrupt(self, signum, frame):
        raise CallTimeout

    def __enter__(self) -> "CallTimer":
        self._signals = self.seconds > 0 and threading.current_thread() is threading.main_thread()
        if self._signals:
            self._previous = signal.signal(signal.SIGALRM, self._interrupt)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._signals:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
            self._signals = False

    def call(self, method: Callable, arguments: Mapping[str, Any]) -> str:
        """The method's result string, computed under the time limit."""
        self._arm()
        try:
            return stringify_result(method(**arguments))
        finally:
            self._disarm()

    def _arm(self) -> None:
        if self._signals:
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        elif self.seconds > 0:
            self._fired = False
            self._watchdog = threading.Timer(self.seconds, self._raise_in, (threading.get_ident(),))
            self._watchdog.daemon = True
            self._watchdog.start()

    def _disarm(self) -> None:
        if self._signals:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elif self._watchdog is not None:
            with self._lock:
                self._watchdog.cancel()
                self._watchdog = None
                if self._fired:  # raised too late to land in the call: drop it before it lands elsewhere
                    _set_async_exc(threading.get_ident(), ctypes.py_object())

    def _raise_in(self, thread_id: int) -> None:
        with self._lock:
            if self._watchdog is threading.current_thread():  # not disarmed meanwhile
                self._fired = True
                _set_async_exc(thread_id, CallTimeout)


# Raises an exception in another thread at its next bytecode (a NULL object clears a pending one).
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi))


# Process-wide state that backend calls change: MathAPI sets mpmath and decimal precision, and
# VehicleControlAPI writes its latest reading into a module-level dict in long-context mode.
PRECISION_CHANGING_CLASSES = frozenset({"MathAPI"})
MODULE_DICTS_WRITTEN = {"VehicleControlAPI": ("LONG_WEATHER_EXTENSION",)}


_PROCESS_STATE_LOCK = threading.Lock()


@contextmanager
def _isolated_process_state(method: Callable, class_name: str) -> Iterator[None]:
    """Undo a call's changes to process-wide state, so nothing leaks into later calls or episodes.
    Such calls run one at a time, so a call on another thread neither sees nor restores them."""
    module = sys.modules[type(method.__self__).__module__]
    with _PROCESS_STATE_LOCK:
        saved_dicts = {name: dict(getattr(module, name)) for name in MODULE_DICTS_WRITTEN.get(class_name, ())}
        saved_prec = mpmath.mp.prec
        try:
            with decimal.localcontext():
                yield
        finally:
            mpmath.mp.prec = saved_prec
            for name, saved in saved_dicts.items():
                written = getattr(module, name)
                written.clear()
                written.update(saved)


class ToolSession:
    """Fresh backend instances for one episode, and the only way to call their tools.

    Use as a context manager (or call `close`) so the instances are released when the episode ends.
    """

    def __init__(
        self,
        involved_classes: Iterable[str],
        initial_config: Mapping[str, Any],
        long_context: bool = False,
        release: str | None = None,
        limits: CallLimits = DEFAULT_LIMITS,
        copy_config: bool = True,
    ):
        """`initial_config` maps class names to scenarios; it is deep-copied unless `copy_config`
        is False, for a caller that hands over a private copy already (see `for_task`)."""
        self.limits = limits
        self.instances: dict[str, Any] = {}
        self._tools: dict[str, tuple[str, Callable]] = {}
        self._hidden: set[str] = set()
        for class_name in involved_classes:
            cls = backend_class(class_name, release)
            instance = cls()
            if class_name not in STATELESS_CLASSES:
                scenario = initial_config.get(class_name, {})
                if copy_config:
                    scenario = copy.deepcopy(scenario)
                instance._load_scenario(scenario, long_context=long_context)
            self.instances[class_name] = instance
            for name in _public_method_names(instance):
                self._tools[name] = (class_name, getattr(instance, name))

    @classmethod
    def for_task(cls, task, limits: CallLimits = DEFAULT_LIMITS) -> "ToolSession":
        """A session on the task's scenario, with the long-context flag of its category."""
        return cls(task.involved_classes, task.scenario(), task.long_context, task.release, limits, copy_config=False)

    @property
    def tool_names(self) -> list[str]:
        """Tools that can be called now (hidden ones excluded)."""
        return [name for name in self._tools if name not in self._hidden]

    def hide(self, names: Iterable[str]) -> None:
        """Make tools behave as if they did not exist (held-out tools before their turn)."""
        self._hidden.update(names)

    def reveal(self, names: Iterable[str]) -> None:
        self._hidden.difference_update(names)

    def owner(self, tool: str) -> tuple[str, Any] | None:
        """The class name and instance that provide `tool`, or None for an unknown or hidden tool."""
        if tool not in self._tools or tool in self._hidden:
            return None
        class_name = self._tools[tool][0]
        return class_name, self.instances[class_name]

    def to_tool_call(self, call: str | ParsedCall | ToolCall) -> ToolCall:
        """Parse and bind a call; raises CallError with the message the call's result would carry."""
        if not isinstance(call, (ToolCall, ParsedCall)):
            call = parse_call(call, self.limits)
        if not isinstance(call.name, str):
            raise CallError("a tool call needs a string name")
        if call.name in REFUSED_NAMES:
            raise CallError(f"Function call {call.name} is not allowed.")
        if call.name not in self._tools or call.name in self._hidden:
            raise CallError(f"name '{call.name}' is not defined")
        if isinstance(call, ToolCall):
            check_tool_call(call, self.limits)
            return call
        return ToolCall(call.name, bind_arguments(self._tools[call.name][1], call))

    def describe(self, call: str | ParsedCall | ToolCall) -> ToolCall | None:
        """The call as name + keyword arguments even when it cannot run (unknown tool, bad
        positional arguments); None when it does not parse at all. Used to explain failures."""
        if isinstance(call, ToolCall):
            return call
        if not isinstance(call, ParsedCall):
            try:
                call = parse_call(call, self.limits)
            except (CallError, TypeError):
                return None
        try:
            return self.to_tool_call(call)
        except CallError:
            return ToolCall(call.name, dict(call.kwargs))

    def execute(self, call: str | ParsedCall | ToolCall) -> str:
        """Run one call and return its official result string (errors included, never raised)."""
        with CallTimer(self.limits.timeout_seconds) as timer:
            return self._run(call, timer)

    def execute_all(self, calls: Iterable[str | ParsedCall | ToolCall]) -> list[str]:
        with CallTimer(self.limits.timeout_seconds) as timer:
            return [self._run(call, timer) for call in calls]

    def _run(self, call: str | ParsedCall | ToolCall, timer: CallTimer) -> str:
        try:
            tool_call = self.to_tool_call(call)
            class_name, method = self._tools[tool_call.name]
            _check_cost(class_name, tool_call.name, tool_call.arguments)
            if class_name in PRECISION_CHANGING_CLASSES or class_name in MODULE_DICTS_WRITTEN:
                # The timer stops before the state is restored, so a timeout cannot cut the restoring
                # short. Stringify inside: an mpmath number prints with the precision of its own call,
                # and a returned module-level dict must be read before it is restored.
                with _isolated_process_state(method, class_name):
                    return timer.call(method, tool_call.arguments)
            return timer.call(method, tool_call.arguments)
        except CallTimeout:
            return f"{ERROR_PREFIX}call took longer than {timer.seconds:g} s and was stopped"
        except Exception as error:
            return f"{ERROR_PREFIX}{error}"

    def state(self) -> dict[str, dict[str, Any]]:
        """The public (non-underscore) attributes of every instance: what the state check compares."""
        return {
            class_name: {key: value for key, value in vars(instance).items() if not key.startswith("_")}
            for class_name, instance in self.instances.items()
        }

    def close(self) -> None:
        self.instances.clear()
        self._tools.clear()

    def __enter__(self) -> "ToolSession":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
