"""Line granularity (``granularity="line"``, thread backend): every new line of
user code is a sync point, and its plain attribute and global accesses are
visible to the race detector.

**Points.**  A task wrapped in :class:`LineTraced` passes a point named
``<file>@<line>`` before each new line it executes in user code (not the
standard library, site-packages or races itself), so a schedule, an
exploration or a token can switch tasks between two plain Python statements.

**How lines are seen.**  Python 3.12+ uses ``sys.monitoring`` (LINE events)
under a tool id that is not ``DEBUGGER_ID`` (pytest-timeout and debuggers
watch that one): ``OPTIMIZER_ID`` first, else another free id; the tool is
taken when a run starts and freed when it ends (:func:`acquire` /
:func:`release`), and every location it disabled is restarted.  The events are
process-wide, so the callback acts only on the threads of line-traced tasks;
code outside user code gets ``sys.monitoring.DISABLE``.  Python 3.10-3.11 (or
when every tool id is taken) uses ``sys.settrace`` in the task's thread, and
puts back the tracer it found.  Both are undone when the task ends, also when
it raises.

**Accesses** (only when the run detects races).  Each line's bytecode is
analysed once per code object and start offset (``dis.get_instructions``, a
small stack simulation): an attribute read (``LOAD_ATTR``, not a method load)
or write (``STORE_ATTR``, ``DELETE_ATTR``) on a base that is a local, a
closure variable, a global or an attribute chain of those (``self.value``,
``box.stats.count``), and a read (``LOAD_GLOBAL`` of a name holding data: not
a function, class, module or builtin) or write (``STORE_GLOBAL``) of a module
global.  The location is ``Type.attr`` (``Counter.value``) or ``module.name``,
keyed by the object's id and the name, so two objects never merge (the objects
are kept alive until the run ends, so an id is not reused).  Objects that
report their own accesses are skipped (``races.shared`` wrappers, Manager
proxies, races and threading objects).

When they count: accesses before the line's first call (or ``with``, item
access, iteration) happen right after the line's step, so they are carried in
that step's ``args`` (see :func:`races.detect.accesses.classify_all`); those
after it happen after whatever steps the call takes, so they are kept with
their frame and handed to the detector at the first later step of the task
whose frame has moved past them (:func:`drain`), or at the task's end.

Limits: the base object is resolved at the line's start (``x = make(); x.v = 1``
on one line is not seen); a conditional expression's untaken branch after a
call on that line still counts; mutations inside containers (``self.items.append``)
are reads of the attribute (wrap the container with ``races.shared`` to see them);
an attribute reached through ``__getattr__``, a property or slots is seen only
on a named base.
"""
from __future__ import annotations

import dis
import os
import sys
import sysconfig
import threading
import types
from _thread import get_ident
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from .agent import Agent, current
from .step import short_path

GRANULARITIES = ("step", "line")

# sys.monitoring tool ids tried, in order: never DEBUGGER_ID (0, which pytest-timeout
# takes as "a debugger is attached") nor COVERAGE_ID (1)
TOOL_IDS = (5, 4, 3, 2)  # OPTIMIZER_ID, two unnamed ids, PROFILER_ID
TOOL_NAME = "races line granularity"


def check_granularity(granularity: Any) -> None:
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}")


# -- what is user code ----------------------------------------------------------


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {os.path.realpath(paths[k]) + os.sep for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep)  # races itself
    return tuple(sorted(dirs))


_LIBRARY = _library_dirs()
_user_files: Dict[str, bool] = {}
_basenames: Dict[str, str] = {}


def is_user_file(filename: str) -> bool:
    """True for a file of the user's code (not ``<string>``, the standard library,
    site-packages or races)."""
    mine = _user_files.get(filename)
    if mine is None:
        mine = _user_files[filename] = not filename.startswith("<") and not os.path.realpath(
            filename).startswith(_LIBRARY)
    return mine


def _point_name(code: types.CodeType, line: int) -> str:
    filename = code.co_filename
    base = _basenames.get(filename)
    if base is None:
        base = _basenames[filename] = os.path.basename(filename)
    return f"{base}@{line}"


# -- accesses ---------------------------------------------------------------------


class LineAccess(NamedTuple):
    """A plain attribute or global access of a traced line, as the detector takes it."""

    kind: str  # "read" or "write"
    container: str  # "py<id>" of the object (a module's globals: its dict)
    key: str  # the attribute or global name
    display: str  # Counter.value, module.name
    where: str  # file:line
    op: str  # the expression: self.value, total
    stack: tuple  # ((file:line, function), ...), innermost first


# A planned access: (offset, kind, base, name, text, late).  ``base`` is None for a
# global of the frame, else ("local", name) | ("global", name) | ("attr", base, name).
Plan = Tuple[Tuple[int, str, Any, str, str, bool], ...]

_VERSION = sys.version_info[:2]
_GLOBAL_NULL = _VERSION >= (3, 11)  # LOAD_GLOBAL's low bit: push NULL (a call follows)
_ATTR_METHOD = _VERSION >= (3, 12)  # LOAD_ATTR's low bit: a method load

_LOCAL_LOADS = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_AND_CLEAR", "LOAD_DEREF", "LOAD_CLASSDEREF"})
# instructions that may run other code, and so other steps, in the middle of a line
_MAY_CALL = frozenset({
    "BEFORE_WITH", "SETUP_WITH", "BEFORE_ASYNC_WITH", "SETUP_ASYNC_WITH", "WITH_EXCEPT_START",
    "BINARY_SUBSCR", "STORE_SUBSCR", "DELETE_SUBSCR", "BINARY_SLICE", "STORE_SLICE", "CONTAINS_OP",
    "GET_ITER", "FOR_ITER", "SEND", "YIELD_VALUE", "YIELD_FROM", "GET_AWAITABLE", "IMPORT_NAME",
    "IMPORT_FROM", "RAISE_VARARGS",
})
_NO_STACK = frozenset({
    "NOP", "RESUME", "EXTENDED_ARG", "CACHE", "KW_NAMES", "SETUP_FINALLY", "SETUP_CLEANUP", "SETUP_LOOP",
    "POP_BLOCK", "COPY_FREE_VARS", "MAKE_CELL", "NOT_TAKEN", "PRECALL",
})
_ROTATE = {"ROT_TWO": 2, "ROT_THREE": 3, "ROT_FOUR": 4}


def _may_call(opname: str) -> bool:
    return opname in _MAY_CALL or (opname.startswith("CALL") and not opname.startswith("CALL_INTRINSIC"))


def _text(base: Any) -> str:
    if base[0] == "attr":
        return f"{_text(base[1])}.{base[2]}"
    return base[1]


def _effect(ins: dis.Instruction) -> Optional[int]:
    try:
        return dis.stack_effect(ins.opcode, ins.arg, jump=False)
    except (ValueError, TypeError):
        try:
            return dis.stack_effect(ins.opcode, jump=False)
        except (ValueError, TypeError):
            return None


def simulate(instructions: List[dis.Instruction], switches: frozenset = frozenset()) -> Plan:
    """The accesses of a straight run of instructions (one line), found by a small
    simulation of the value stack that only tracks named bases.  An access is
    *late* when a call or a switch (``switches``: offsets) comes before it."""
    stack: List[Any] = []
    out: list = []
    late = False

    def pop() -> Any:
        return stack.pop() if stack else None

    for ins in instructions:
        op = ins.opname
        if _may_call(op) or ins.offset in switches:
            late = True
        if op in _LOCAL_LOADS:
            stack.append(("local", ins.argval))
        elif op == "LOAD_FAST_LOAD_FAST":
            first, second = ins.argval
            stack += [("local", first), ("local", second)]
        elif op == "STORE_FAST_LOAD_FAST":
            pop()
            stack.append(("local", ins.argval[1]))
        elif op == "LOAD_GLOBAL":
            if _GLOBAL_NULL and ins.arg is not None and ins.arg & 1:
                stack += [None, None]  # a callable about to be called: not data
            else:
                stack.append(("global", ins.argval))
                out.append((ins.offset, "read", None, ins.argval, ins.argval, late))
        elif op in ("STORE_GLOBAL", "DELETE_GLOBAL"):
            if op == "STORE_GLOBAL":
                pop()
            out.append((ins.offset, "write", None, ins.argval, ins.argval, late))
        elif op == "LOAD_ATTR":
            base = pop()
            if _ATTR_METHOD and ins.arg is not None and ins.arg & 1:
                stack += [None, None]  # a method load: obj.method(...)
            elif base is not None:
                out.append((ins.offset, "read", base, ins.argval, f"{_text(base)}.{ins.argval}", late))
                stack.append(("attr", base, ins.argval))
            else:
                stack.append(None)
        elif op == "LOAD_METHOD":
            pop()
            stack += [None, None]
        elif op in ("STORE_ATTR", "DELETE_ATTR"):
            base = pop()
            if op == "STORE_ATTR":
                pop()
            if base is not None:
                out.append((ins.offset, "write", base, ins.argval, f"{_text(base)}.{ins.argval}", late))
        elif op == "DUP_TOP":
            stack.append(stack[-1] if stack else None)
        elif op == "DUP_TOP_TWO":
            stack += stack[-2:] if len(stack) >= 2 else [None, None]
        elif op == "COPY":
            n = ins.arg or 1
            stack.append(stack[-n] if len(stack) >= n else None)
        elif op == "SWAP":
            n = ins.arg or 2
            if len(stack) >= n:
                stack[-1], stack[-n] = stack[-n], stack[-1]
            else:
                stack[:] = [None] * len(stack)
        elif op in _ROTATE or op == "ROT_N":
            n = _ROTATE.get(op) or ins.arg or 2
            if len(stack) >= n:
                top = stack.pop()
                stack.insert(len(stack) - n + 1, top)
            else:
                stack[:] = [None] * len(stack)
        elif op in _NO_STACK or op.startswith("JUMP_") and not op.startswith("JUMP_IF_"):
            pass
        else:
            effect = _effect(ins)
            if effect is None:
                stack[:] = [None] * len(stack)
                continue
            pops = max(0, -effect)
            del stack[max(0, len(stack) - pops):]
            pure_pop = op.startswith(("STORE_", "POP_TOP", "POP_JUMP", "JUMP_IF_", "RETURN_", "DELETE_"))
            pure_push = op.startswith("LOAD_") or op in ("PUSH_NULL", "FOR_ITER", "GET_LEN") or op.startswith(
                "MATCH_")
            if stack and not pure_pop and not pure_push:
                stack[-1] = None  # the instruction consumed it and left its result in its place
            stack += [None] * max(0, effect)
    return tuple(out)


_plans: Dict[Tuple[types.CodeType, int], Plan] = {}
_instructions: Dict[types.CodeType, Tuple[List[dis.Instruction], List[int], Dict[int, int]]] = {}
_switches: Dict[types.CodeType, frozenset] = {}


def _code_instructions(code: types.CodeType) -> Tuple[List[dis.Instruction], List[int], Dict[int, int]]:
    found = _instructions.get(code)
    if found is None:
        instructions = list(dis.get_instructions(code))
        lines: List[int] = []
        line = code.co_firstlineno
        for ins in instructions:
            if sys.version_info >= (3, 11):
                positions = ins.positions
                if positions is not None and positions.lineno is not None:
                    line = positions.lineno
            elif ins.starts_line is not None:
                line = ins.starts_line
            lines.append(line)
        index = {ins.offset: i for i, ins in enumerate(instructions)}
        found = _instructions[code] = (instructions, lines, index)
    return found


def _run_from(code: types.CodeType, start: int) -> List[dis.Instruction]:
    instructions, lines, _ = _code_instructions(code)
    run: List[dis.Instruction] = []
    line = lines[start]
    for i in range(start, len(instructions)):
        if lines[i] != line:
            break
        run.append(instructions[i])
    return run


def switches(code: types.CodeType) -> frozenset:
    """Offsets in ``code`` of the plain writes that follow a plain read on their
    line (``self.value = self.value + 1``, ``total += n``): each is a possible
    switch of its own, so that the read and the write can be split.  A global
    read counts only for a write of the same global (it is often a function
    or a module)."""
    found = _switches.get(code)
    if found is None:
        instructions, lines, _ = _code_instructions(code)
        offsets = set()
        for i in range(len(instructions)):
            if i and lines[i] == lines[i - 1]:
                continue
            attribute_read = False
            global_reads = set()
            for offset, kind, base, name, _, _ in simulate(_run_from(code, i)):
                if kind == "read":
                    if base is None:
                        global_reads.add(name)
                    else:
                        attribute_read = True
                elif attribute_read or (base is None and name in global_reads):
                    offsets.add(offset)
        found = _switches[code] = frozenset(offsets)
    return found


def plan(code: types.CodeType, offset: int) -> Plan:
    """The accesses of the line that starts at ``offset`` in ``code`` (cached)."""
    key = (code, offset)
    found = _plans.get(key)
    if found is None:
        start = _code_instructions(code)[2].get(offset)
        run = _run_from(code, start) if start is not None else []
        found = _plans[key] = simulate(run, switches(code))
    return found


_MISSING = object()
# objects whose own accesses are steps already, or that are not plain data
_SKIP_MODULES = ("races", "multiprocessing", "threading", "_thread", "queue", "concurrent")
_NOT_DATA = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType, type,
             types.MethodWrapperType, types.WrapperDescriptorType)


def _controlled(obj: Any) -> bool:
    """An object of (or a class from) races, multiprocessing, threading, queue."""
    owner = obj if isinstance(obj, type) else type(obj)
    module = getattr(owner, "__module__", None)
    return isinstance(module, str) and module.split(".", 1)[0] in _SKIP_MODULES


def _static_attr(obj: Any, name: str) -> Any:
    """``obj.name`` when it lives in ``obj.__dict__`` (no code of the object runs)."""
    try:
        namespace = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return _MISSING
    try:
        return namespace[name] if name in namespace else _MISSING
    except TypeError:
        return _MISSING


def _user_stack(frame: Any, limit: int = 4) -> tuple:
    out: list = []
    while frame is not None and len(out) < limit:
        filename = frame.f_code.co_filename
        if is_user_file(filename):
            out.append((f"{short_path(filename)}:{frame.f_lineno}", frame.f_code.co_name))
        frame = frame.f_back
    return tuple(out)


def resolve(planned: Plan, frame: Any, line: int, keep: Dict[int, Any]) -> Tuple[list, list]:
    """The plan's accesses on the objects the frame holds now: ``(now, later)``,
    ``later`` as ``(offset, LineAccess)`` pairs."""
    now: list = []
    later: list = []
    f_locals: Any = None
    values: Dict[Any, Any] = {}
    where = f"{short_path(frame.f_code.co_filename)}:{line}"
    stack: Optional[tuple] = None

    def value(base: Any) -> Any:
        nonlocal f_locals
        found = values.get(base, values)
        if found is not values:
            return found
        kind = base[0]
        if kind == "local":
            if f_locals is None:
                f_locals = frame.f_locals
            try:
                found = f_locals[base[1]]
            except KeyError:
                found = _MISSING
        elif kind == "global":
            found = frame.f_globals.get(base[1], _MISSING)
        else:
            parent = value(base[1])
            found = _MISSING if parent is _MISSING or _controlled(parent) else _static_attr(parent, base[2])
        values[base] = found
        return found

    for offset, kind, base, name, text, is_late in planned:
        if name.startswith("__") and name.endswith("__"):
            continue
        if base is None:  # a global of this frame
            namespace = frame.f_globals
            if kind == "read":
                held = namespace.get(name, _MISSING)
                if held is _MISSING or isinstance(held, _NOT_DATA) or _controlled(held):
                    continue  # a builtin, a function, a class, a module, a lock...
            display = f"{namespace.get('__name__', '?')}.{name}"
            container: Any = namespace
        else:
            obj = value(base)
            if obj is _MISSING or _controlled(obj):
                continue
            if isinstance(obj, types.ModuleType):
                module_file = getattr(obj, "__file__", None)
                if not module_file or not is_user_file(module_file):
                    continue
                container = obj.__dict__
                display = f"{obj.__name__}.{name}"
            else:
                container = obj
                owner = obj.__name__ if isinstance(obj, type) else type(obj).__name__
                display = f"{owner}.{name}"
        ident = id(container)
        keep[ident] = container
        if stack is None:
            stack = _user_stack(frame)
        access = LineAccess(kind, f"py{ident:x}", name, display, where, text, stack)
        if is_late:
            later.append((offset, access))
        else:
            now.append(access)
    return now, later


# -- one traced task ----------------------------------------------------------------


_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200  # CO_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR


class TaskLines:
    """What one line-traced task holds: its agent and the accesses that its frames
    will make later on their current lines."""

    def __init__(self, agent: Agent, collect: bool, keep: Dict[int, Any]) -> None:
        self.agent = agent
        self.collect = collect
        self.keep = keep
        self.pending: List[Tuple[Any, list]] = []  # (frame, [(offset, LineAccess)])

    def on_line(self, frame: Any, line: int) -> None:
        """A new line in a user frame: pass its point, carrying its accesses."""
        agent = self.agent
        if agent.busy:
            return
        found: tuple = ()
        if self.collect:
            found = self._accesses(frame, line)
        agent.step("point", _point_name(frame.f_code, line), args=(found,) if found else ())

    def on_write(self, frame: Any) -> None:
        """A read-modify-write line is about to write (see :func:`switches`): pass
        ``<file>@<line>.write``, carrying what the task did since its last step."""
        agent = self.agent
        if agent.busy:
            return
        found: list = []
        if self.collect and self.pending:
            self.drain_into(found)
        name = _point_name(frame.f_code, frame.f_lineno) + ".write"
        agent.step("point", name, args=(tuple(found),) if found else ())

    def _accesses(self, frame: Any, line: int) -> tuple:
        out: list = []
        if self.pending:
            self.drain_into(out, frame)
            if len(self.pending) > 16:
                self._prune(frame)
        planned = plan(frame.f_code, frame.f_lasti)
        if planned:
            now, later = resolve(planned, frame, line, self.keep)
            out.extend(now)
            if later:
                self.pending.append((frame, later))
        return tuple(out)

    def drain_into(self, out: list, finished: Any = None, final: bool = False) -> None:
        """Move the pending accesses that have happened into ``out``: all of
        ``finished``'s (a frame that has moved to a new line), those another frame
        has executed past, and (``final``: the task ended) nothing stays."""
        keep: List[Tuple[Any, list]] = []
        for frame, items in self.pending:
            if frame is finished:
                out.extend(access for _, access in items)
                continue
            lasti = frame.f_lasti
            rest = []
            for offset, access in items:
                if offset < lasti:
                    out.append(access)
                else:
                    rest.append((offset, access))
            if rest and not final:
                keep.append((frame, rest))
        self.pending = keep

    def _prune(self, frame: Any) -> None:
        """Forget what finished frames skipped (a frame that is neither on the stack
        nor a generator has returned)."""
        live = set()
        while frame is not None:
            live.add(id(frame))
            frame = frame.f_back
        self.pending = [
            (f, items) for f, items in self.pending
            if id(f) in live or f.f_code.co_flags & _GENERATOR_FLAGS
        ]

    # -- sys.settrace (3.10, 3.11) ----------------------------------------------------
    def trace_calls(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and is_user_file(frame.f_code.co_filename):
            if switches(frame.f_code):
                frame.f_trace_opcodes = True
            return self.trace_lines
        return None

    def trace_lines(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.on_line(frame, frame.f_lineno)
        elif event == "opcode" and frame.f_lasti in switches(frame.f_code):
            self.on_write(frame)
        return self.trace_lines


# -- the session: one per run ----------------------------------------------------------


class _Session:
    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.users = 0
        self.collect = False
        self.tool: Optional[int] = None
        self.by_thread: Dict[int, TaskLines] = {}
        self.by_name: Dict[str, TaskLines] = {}
        self.keep: Dict[int, Any] = {}
        self.armed: set = set()  # code objects with INSTRUCTION events (monitoring)


_session = _Session()


def monitoring_available() -> bool:
    return sys.version_info >= (3, 12)


def _on_line(code: types.CodeType, line: int) -> Any:
    """The sys.monitoring LINE callback (every thread of the process)."""
    if not is_user_file(code.co_filename):
        return _DISABLE
    task = _session.by_thread.get(get_ident())
    if task is not None:
        if code not in _session.armed:
            _arm(code)
        task.on_line(sys._getframe(1), line)
    return None


def _arm(code: types.CodeType) -> None:
    """Ask for INSTRUCTION events in ``code`` when it has writes to split (every
    other instruction disables its own event at once)."""
    _session.armed.add(code)
    if switches(code) and _session.tool is not None and sys.version_info >= (3, 12):
        sys.monitoring.set_local_events(_session.tool, code, sys.monitoring.events.INSTRUCTION)


def _on_instruction(code: types.CodeType, offset: int) -> Any:
    """The sys.monitoring INSTRUCTION callback (armed code objects only)."""
    if offset not in switches(code):
        return _DISABLE
    task = _session.by_thread.get(get_ident())
    if task is not None:
        task.on_write(sys._getframe(1))
    return None


_DISABLE: Any = None


def _take_tool() -> Optional[int]:
    global _DISABLE
    if sys.version_info < (3, 12):
        return None
    monitoring = sys.monitoring
    _DISABLE = monitoring.DISABLE
    for tool in TOOL_IDS:
        if tool == monitoring.DEBUGGER_ID:
            continue
        try:
            monitoring.use_tool_id(tool, TOOL_NAME)
        except ValueError:  # taken by another tool
            continue
        monitoring.register_callback(tool, monitoring.events.LINE, _on_line)
        monitoring.register_callback(tool, monitoring.events.INSTRUCTION, _on_instruction)
        monitoring.set_events(tool, monitoring.events.LINE)
        return tool
    return None  # every id is taken: sys.settrace


def _free_tool(tool: int, armed: set) -> None:
    if sys.version_info >= (3, 12):
        monitoring = sys.monitoring
        try:
            for code in armed:
                monitoring.set_local_events(tool, code, 0)
            monitoring.set_events(tool, 0)
            monitoring.register_callback(tool, monitoring.events.LINE, None)
            monitoring.register_callback(tool, monitoring.events.INSTRUCTION, None)
        finally:
            monitoring.free_tool_id(tool)
            # the locations our callback disabled must not stay disabled for the
            # next user of this id
            monitoring.restart_events()


def acquire(collect: bool = False) -> None:
    """Start line tracing for a run (nested calls count); ``collect``: analyse accesses."""
    s = _session
    with s.mutex:
        s.users += 1
        if collect:
            s.collect = True
        if s.users == 1:
            s.tool = _take_tool()


def release() -> None:
    """End what :func:`acquire` started; the last release frees the tool id and
    forgets every task and kept object."""
    s = _session
    with s.mutex:
        s.users -= 1
        if s.users > 0:
            return
        s.users = 0
        tool, s.tool = s.tool, None
        s.collect = False
        s.by_thread.clear()
        s.by_name.clear()
        s.keep.clear()
        armed = set(s.armed)
        s.armed.clear()
        if tool is not None:
            _free_tool(tool, armed)


def tool_id() -> Optional[int]:
    """The sys.monitoring tool id in use, or None (not tracing, or sys.settrace)."""
    return _session.tool


def drain(task: str, final: bool = False) -> list:
    """The accesses task ``task`` made since its last step (the detector calls this
    at each of its steps, before the step's own edges, and at its end)."""
    lines = _session.by_name.get(task)
    if lines is None or not lines.pending:
        return []
    out: list = []
    lines.drain_into(out, final=final)
    return out


class LineTraced:
    """A task whose every line of user code is a sync point (``granularity="line"``).

    Each new line executed in a function of the user's code first passes a point
    named ``<file>@<line>`` (see the module's docstring).  Outside a run it just
    calls the task.
    """

    def __init__(self, target: Callable[[Any], Any]) -> None:
        self.target = target

    @property
    def func(self) -> Any:
        """The task's own function (reports point at it, as for ``functools.partial``)."""
        return getattr(self.target, "func", self.target)

    def __call__(self, state: Any) -> Any:
        agent = current()
        if agent is None:
            return self.target(state)
        s = _session
        acquire()
        try:
            lines = TaskLines(agent, s.collect, s.keep)
            s.by_name[agent.name] = lines
            if s.tool is not None:
                ident = get_ident()
                s.by_thread[ident] = lines
                try:
                    return self.target(state)
                finally:
                    s.by_thread.pop(ident, None)
            previous = sys.gettrace()
            sys.settrace(lines.trace_calls)
            try:
                return self.target(state)
            finally:
                sys.settrace(previous)
        finally:
            release()


def line_tasks(tasks: Any) -> Dict[str, Callable[[Any], Any]]:
    """``tasks`` with every task wrapped in :class:`LineTraced` (same names)."""
    from .runner import normalize_tasks

    names, targets = normalize_tasks(tasks)
    return {name: LineTraced(target) for name, target in zip(names, targets)}


__all__ = ["GRANULARITIES", "LineAccess", "LineTraced", "acquire", "check_granularity", "drain",
           "is_user_file", "line_tasks", "plan", "release", "tool_id"]
