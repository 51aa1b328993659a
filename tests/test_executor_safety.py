"""Hostile or broken calls never run code outside the tool methods, never hang, never crash."""

import decimal
import gc
import os
import sys
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import mpmath
import pytest

from envtune.bfcl.calls import CallLimits, ToolCall
from envtune.bfcl.executor import ERROR_PREFIX, ToolSession

FILE_SYSTEM = {"root": {"home": {"type": "directory", "contents": {"notes.txt": {"type": "file", "content": "hi"}}}}}


@pytest.fixture
def session():
    with ToolSession(["MathAPI", "GorillaFileSystem"], {"GorillaFileSystem": FILE_SYSTEM}) as tools:
        yield tools


HOSTILE_CALLS = [
    "__import__('os').system('touch {marker}')",
    "import os",
    "exec(\"open('{marker}', 'w')\")",
    "eval(\"open('{marker}', 'w')\")",
    "open('{marker}', 'w')",
    "print('{marker}')",
    "getattr(ls, '__globals__')",
    "ls.__globals__['__builtins__']['open']('{marker}', 'w')",
    "cd.__self__._load_scenario({{}})",
    "_load_scenario({{}})",
    "__init__()",
    "__class__()",
    "lambda: open('{marker}', 'w')",
    "[x for x in ().__class__.__bases__[0].__subclasses__()]",
    "touch(file_name=open('{marker}', 'w'))",
    "touch(file_name=__import__('os').system('touch {marker}'))",
    "touch(**{{'file_name': 'a'}})",
    "touch(*['a'])",
    "touch(file_name=f'{{open(\"{marker}\", \"w\")}}')",
    "kill()",
    "exit()",
    "no_such_tool(x=1)",
    "ls() or open('{marker}', 'w')",
    "ls(); open('{marker}', 'w')",
    "",
    "   ",
    "ls(",
    "\x00",
]


@pytest.mark.parametrize("template", HOSTILE_CALLS)
def test_hostile_calls_come_back_as_errors_and_run_nothing(session, tmp_path, template):
    marker = tmp_path / "pwned"
    pristine = ToolSession(["MathAPI", "GorillaFileSystem"], {"GorillaFileSystem": FILE_SYSTEM})
    result = session.execute(template.format(marker=marker))
    assert result.startswith(ERROR_PREFIX), result
    assert not marker.exists()
    assert session.state() == pristine.state()


@pytest.mark.parametrize(
    "call",
    [
        "power(base=10, exponent=10**9)",
        "power(base=10, exponent=1000000000)",
        "power(base=-7, exponent=123456789)",
        "power(base=10**70, exponent=10**70)",
        "multiply(a=10**10**10, b=2)",
        "logarithm(value=10, base=3, precision=1000000000)",
        "square_root(number=2, precision=1000000000)",
        "add(a=" + "9" * 5000 + ", b=1)",
        "mean(numbers=" + "[" * 5000 + "]" * 5000 + ")",
        "mean(numbers=" + "[" * 50 + "]" * 50 + ")",
        "mean(numbers=[" + "1," * 100_000 + "])",
        "echo(content='" + "x" * 1_000_000 + "', file_name='big.txt')",
        "echo(content=" + "'x' * 10**9" + ", file_name='big.txt')",
        "mean(numbers={'a': " * 200 + "1" + "}" * 200 + ")",
    ],
)
def test_costly_calls_are_refused_quickly(session, call):
    started = time.perf_counter()
    result = session.execute(call)
    assert result.startswith(ERROR_PREFIX), result[:200]
    assert time.perf_counter() - started < 2.0


def test_ordinary_math_still_matches_python(session):
    assert session.execute("power(base=2, exponent=100)") == '{"result": %d}' % 2**100
    assert session.execute("power(base=2.0, exponent=0.5)") == '{"result": %r}' % 2.0**0.5


def test_a_call_that_runs_too_long_is_stopped(session):
    def spin(folder: str) -> None:
        while True:
            pass

    slow = ToolSession(["GorillaFileSystem"], {"GorillaFileSystem": FILE_SYSTEM}, limits=CallLimits(timeout_seconds=0.2))
    slow._tools["cd"] = ("GorillaFileSystem", spin)
    started = time.perf_counter()
    result = slow.execute("cd(folder='home')")
    assert result == f"{ERROR_PREFIX}call took longer than 0.2 s and was stopped"
    assert time.perf_counter() - started < 2.0
    assert slow.execute("ls()").startswith("{")  # the session stays usable


def test_the_time_limit_holds_on_a_worker_thread():
    """The veRL agent loop steps episodes in an event loop's executor thread, where SIGALRM never arrives."""
    def spin(folder: str) -> str:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            pass
        return "finished"

    slow = ToolSession(["GorillaFileSystem"], {"GorillaFileSystem": FILE_SYSTEM}, limits=CallLimits(timeout_seconds=0.2))
    slow._tools["cd"] = ("GorillaFileSystem", spin)
    with ThreadPoolExecutor(1) as pool:
        started = time.perf_counter()
        result = pool.submit(slow.execute, "cd(folder='home')").result()
        assert result == f"{ERROR_PREFIX}call took longer than 0.2 s and was stopped"
        assert time.perf_counter() - started < 2.0
        assert pool.submit(slow.execute, "ls()").result().startswith("{")  # the session stays usable
        time.sleep(0.3)  # no timeout is left pending for the thread's next work
        assert pool.submit(sum, range(10**6)).result() == sum(range(10**6))


def test_numeric_precision_stays_per_call_across_threads():
    """MathAPI sets process-wide precision: calls on several threads at once must neither see nor
    restore each other's."""
    calls = {"logarithm(value=10, base=3, precision=60)": None, "logarithm(value=8, base=2, precision=5)": None,
             "square_root(number=2, precision=80)": None}
    with ToolSession(["MathAPI"], {}) as tools:
        for call in calls:
            calls[call] = tools.execute(call)
    dps = mpmath.mp.dps
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        start = threading.Barrier(len(calls))

        def hammer(call):
            with ToolSession(["MathAPI"], {}) as tools:
                start.wait()
                return {tools.execute(call) for _ in range(500)}

        with ThreadPoolExecutor(len(calls)) as pool:
            results = dict(zip(calls, pool.map(hammer, calls)))
    finally:
        sys.setswitchinterval(interval)
    assert results == {call: {result} for call, result in calls.items()}
    assert mpmath.mp.dps == dps


def test_numeric_precision_does_not_leak_between_calls(session):
    dps, prec = mpmath.mp.dps, decimal.getcontext().prec
    high = session.execute("logarithm(value=10, base=3, precision=60)")
    assert len(high) > 60  # printed at the precision of its own call, as the official executor does
    session.execute("square_root(number=2, precision=80)")
    assert (mpmath.mp.dps, decimal.getcontext().prec) == (dps, prec)
    assert session.execute("logarithm(value=8, base=2, precision=5)") == "{'result': mpf('3.0')}"


def test_positional_arguments_bind_like_python(session):
    assert session.to_tool_call("cat('notes.txt')").arguments == {"file_name": "notes.txt"}
    session.execute("cd(folder='home')")
    assert session.execute("cat('notes.txt')") == '{"file_content": "hi"}'
    file_system = session.instances["GorillaFileSystem"]
    for call, direct in [
        ("cd('a', 'b')", lambda: file_system.cd("a", "b")),
        ("sort('a', file_name='b')", lambda: file_system.sort("a", file_name="b")),
        ("ls(1, 2, 3)", lambda: file_system.ls(1, 2, 3)),
        ("cd(wrong='a')", lambda: file_system.cd(wrong="a")),
        ("cd()", lambda: file_system.cd()),
    ]:
        with pytest.raises(TypeError) as python_error:
            direct()
        assert session.execute(call) == f"{ERROR_PREFIX}{python_error.value}"


def test_sessions_are_independent_and_released(tasks):
    task = tasks["multi_turn_base_0"]
    first, second = ToolSession.for_task(task), ToolSession.for_task(task)
    first.execute("mkdir(dir_name='made_in_first')")
    assert first.state() != second.state()
    assert task.initial_config == tasks["multi_turn_base_0"].initial_config
    instance = weakref.ref(first.instances["GorillaFileSystem"])
    del first
    gc.collect()
    assert instance() is None


def test_backend_exceptions_become_error_results(session):
    assert session.execute("cd(folder=123)").startswith(ERROR_PREFIX)
    assert session.execute("mean(numbers=['a', 1])") == '{"error": "All elements in the list must be numbers"}'


def test_no_file_is_written_by_file_system_tools(session, tmp_path):
    os.chdir(tmp_path)
    session.execute("touch(file_name='created.txt')")
    session.execute("echo(content='data', file_name='created.txt')")
    assert list(tmp_path.iterdir()) == []


def test_module_level_state_written_by_backends_is_restored(tasks):
    from envtune.bfcl.backends import backend_class

    module = __import__(backend_class("VehicleControlAPI").__module__, fromlist=["LONG_WEATHER_EXTENSION"])
    before = dict(module.LONG_WEATHER_EXTENSION)
    task = tasks["multi_turn_long_context_0"]
    with ToolSession(["VehicleControlAPI"], task.initial_config, long_context=True) as session:
        result = session.execute("get_outside_temperature_from_google()")
    assert '"outsideTemperature"' in result and '"-1_day"' in result
    assert module.LONG_WEATHER_EXTENSION == before


@pytest.mark.parametrize(
    "call",
    [
        ToolCall("echo", {"content": "x" * 1_000_000, "file_name": "a"}),
        ToolCall("mean", {"numbers": [1] * 100_000}),
        ToolCall("power", {"base": 10, "exponent": 10**9}),
        ToolCall("add", {"a": 2**4000, "b": 1}),
        ToolCall("touch", {"file_name": object()}),
        ToolCall("touch", ["file_name"]),
        ToolCall("touch", {1: "a"}),
        ToolCall(None, {}),
        ToolCall("__init__", {}),
        ToolCall("kill", {}),
    ],
)
def test_structured_calls_get_the_same_bounds(session, call):
    assert session.execute(call).startswith(ERROR_PREFIX)


def test_structured_and_string_calls_agree(session):
    deep = {"a": 1}
    for _ in range(40):
        deep = {"a": deep}
    assert session.execute(ToolCall("mean", {"numbers": deep})) == f"{ERROR_PREFIX}argument nested deeper than 16 levels"
    assert session.execute(ToolCall("mean", {"numbers": [1, 2, 3]})) == session.execute("mean(numbers=[1, 2, 3])")
