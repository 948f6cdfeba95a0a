"""Seed corpus, mutations and reader entry points for the fuzz suite.

``tests/test_fuzz_readers.py`` drives these with hypothesis. Every reader that takes a
file a user wrote is here: the Azure ML v1 runconfig reader, the conda file reader, our
runconfig reader, the v2 job reader and ``--set`` parsing. The property for each: an input
ends in a result or a :class:`targets.errors.UsageError` (exit code 2: ``ConfigError`` is
one) -- never another exception, never a hang, never unbounded memory.

Seeds are the real files in ``tests/data/azureml-corpus`` (and our own ``runconfigs/``);
mutations are byte flips, truncation, insertion of hostile snippets (huge integers, deep
nesting, alias bombs, NUL, invalid UTF-8, ``=`` in a variable name, very long names) and
changes to the parsed YAML tree (a value replaced by a hostile one, dumped back).
"""

from __future__ import annotations

import itertools
import os
import resource
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from hypothesis import strategies as st

from targets.errors import UsageError

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "azureml-corpus"

EXAMPLE_CPU_SECONDS = 20
"""CPU time one input may take before it counts as a hang (a reader takes milliseconds)."""
EXTRA_MEMORY = 1 << 30
"""Address space one input may add (1 GiB) before it counts as unbounded memory."""


def _files(pattern: str, root: Path = CORPUS) -> list[bytes]:
    return [p.read_bytes() for p in sorted(root.glob(pattern)) if p.is_file()]


def seeds(kind: str) -> list[bytes]:
    """The real files a reader starts from."""
    if kind == "v1":
        return _files("v1/**/*.runconfig")
    if kind == "conda":
        return _files("v1/**/conda_dependencies.yml")
    if kind == "ours":
        return [
            data
            for data in _files("*.yml", REPO / "runconfigs")
            if b"$schema: https://azuremlschemas" not in data
        ]
    if kind == "job":
        return _files("v2/**/*.yml")
    raise ValueError(kind)


# ------------------------------------------------------------------ hostile parts -----

_BOMB = "bomb:\n  a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)

SNIPPETS: list[str] = [
    "node_count: " + "9" * 5000 + "\n",
    "node_count: 0x" + "f" * 4000 + "\n",
    "priority: " + ":".join(["59"] * 3000) + "\n",
    "arguments: " + "[" * 20000 + "]" * 20000 + "\n",
    "x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    _BOMB,
    "cycle: &c [*c]\n",
    "merge: &m {a: 1}\nother: {<<: *m, <<: *m}\n",
    'arguments: ["a\\0b"]\n',
    "script: \x00\n",
    'arguments: ["\\UFFFFFFFF", "\\U00110000", "\\uD800"]\n',
    "environment_variables:\n  A=B: '1'\n",
    "environmentVariables:\n  '': x\n",
    "script: " + "a" * 300_000 + "\n",
    "script: " + "a/" * 3000 + "x.py\n",
    "source_directory: " + "d" * 1000 + "\n",
    "command: !!python/object/apply:os.system [echo]\n",
    "? [a, b]\n: c\n",
    "? {a: 1}\n: c\n",
    "dup: 1\ndup: 2\n",
    "\t- tab\n",
    "%YAML 1.1\n---\na: 1\n---\nb: 2\n",
    "inputs: {x: {type: uri_file, path: " + "../" * 2000 + "}}\n",
    "- just\n- a\n- list\n",
    "jobs: {a: {type: command, command: echo, jobs: {b: {type: pipeline}}}}\n",
    "search_space: {lr: {type: uniform, min_value: 1e999, max_value: -1e999}}\n",
    "limits: {timeout: -1, max_total_trials: 99999999999999999999}\n",
    "compute: azureml:" + "c" * 10000 + "\n",
]

_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the mutator's own parsing
_INVALID_BYTES = [b"\xff", b"\xfe\xff", b"\x80", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\r"]

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "=", "a=b", "..", "/", "~", "${{inputs.x}}", "azureml:x@latest", "\0"]),
)
hostile_values = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=12,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Key paths into ``data``, depth first. Callers take a bounded number: a seed already
    mutated may hold an alias bomb or a cycle."""
    yield prefix
    if len(prefix) > 30:
        return
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*prefix, index))


def _replace(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        copy = dict(data)
        copy[head] = _replace(data[head], rest, value)
        return copy
    copy_list = list(data)
    copy_list[head] = _replace(data[head], rest, value)
    return copy_list


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> bytes:
    """One real file of ``kind``, mutated one to three times."""
    data = draw(st.sampled_from(seeds(kind)))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["flip", "truncate", "snippet", "bytes", "tree", "key"]))
        if how == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif how == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif how in ("snippet", "bytes"):
            lines = data.split(b"\n")
            at = draw(st.integers(0, len(lines)))
            if how == "snippet":
                part = draw(st.sampled_from(SNIPPETS)).encode()
                indent = draw(st.sampled_from([b"", b"  ", b"    "]))
                part = b"\n".join(indent + line for line in part.split(b"\n"))
            else:
                part = draw(st.sampled_from(_INVALID_BYTES))
            data = b"\n".join([*lines[:at], part, *lines[at:]])
        else:
            try:
                tree = yaml.load(data, Loader=_FAST_LOADER)
            except (yaml.YAMLError, ValueError, RecursionError):
                continue  # already broken by an earlier mutation
            paths = list(itertools.islice(_paths(tree), 500))
            path = draw(st.sampled_from(paths))
            if how == "tree":
                tree = _replace(tree, path, draw(hostile_values))
            elif path and isinstance(path[-1], str):  # rename a key
                parent = tree
                for part in path[:-1]:
                    parent = parent[part]
                name = draw(st.one_of(st.text(max_size=20), st.sampled_from(["A=B", "", "\0"])))
                renamed = {(name if k == path[-1] else k): v for k, v in parent.items()}
                tree = _replace(tree, path[:-1], renamed)
            try:
                data = yaml.safe_dump(tree, allow_unicode=True).encode("utf-8", "surrogatepass")
            except (yaml.YAMLError, ValueError, RecursionError):
                continue
    return data


override_texts = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda key, value: f"{key}={value}",
        st.sampled_from(
            ["inputs.x", "command", "environment_variables.A", "compute", "a..b", "", "="]
        ),
        st.one_of(
            st.text(max_size=60),
            st.sampled_from([s.split(": ", 1)[-1] for s in SNIPPETS if ": " in s]),
        ),
    ),
)


# ------------------------------------------------------------------ entry points ------


def _workdir(tmp: Path) -> Path:
    """A project folder with the files the seeds refer to (script, conda, Spark deps)."""
    (tmp / "aml_config").mkdir(parents=True, exist_ok=True)
    for name in ("conda_dependencies.yml", "spark_dependencies.yml"):
        source = next(iter(sorted(CORPUS.glob(f"v1/**/{name}"))), None)
        if source is not None:
            (tmp / "aml_config" / name).write_bytes(source.read_bytes())
    (tmp / "train.py").write_text("print(1)\n")
    (tmp / "src").mkdir(exist_ok=True)  # the v2 jobs' `code: src`
    (tmp / "src" / "main.py").write_text("print(1)\n")
    (tmp / "runconfigs").mkdir(exist_ok=True)
    if not (tmp / "examples").exists():  # our runconfigs' `source_directory: ../examples/x`
        (tmp / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    return tmp


def read_v1(data: bytes, tmp: Path) -> object:
    from targets.runconfig.io import load_runconfig

    file = _workdir(tmp) / "aml_config" / "fuzz.runconfig"
    file.write_bytes(data)
    return load_runconfig(file, project_dir=tmp)


def read_conda(data: bytes, tmp: Path) -> object:
    from targets.runconfig.conda import CondaDependencies, load_conda_file

    file = tmp / "conda_dependencies.yml"
    file.write_bytes(data)
    spec = load_conda_file(file)
    deps = CondaDependencies(file)  # the SDK-style editor reads the same file
    deps.serialize_to_string()
    return spec


def read_ours(data: bytes, tmp: Path) -> object:
    from targets.runconfig.io import dump_runconfig, load_runconfig

    file = _workdir(tmp) / "runconfigs" / "fuzz.yml"
    file.write_bytes(data)
    loaded = load_runconfig(file, project_dir=tmp)
    return dump_runconfig(loaded.config)  # what `runconfig validate` prints


def read_job(data: bytes, tmp: Path) -> object:
    from targets.jobs.reader import load_job

    file = _workdir(tmp) / "job.yml"
    file.write_bytes(data)
    return load_job(file)


def read_override(text: str, tmp: Path) -> object:
    """``--set TEXT`` on a real job file, the way `targets run JOB --set ...` reads it."""
    from targets.jobs.overrides import parse_override
    from targets.jobs.reader import load_job

    parse_override(text)
    file = _workdir(tmp) / "job.yml"
    file.write_bytes(_override_seed())
    return load_job(file, overrides=[text])


def _override_seed() -> bytes:
    return (CORPUS / "v2/azureml-examples/cli/jobs/basics/hello-world-input.yml").read_bytes()


READERS: dict[str, Callable[[Any, Path], object]] = {
    "v1": read_v1,
    "conda": read_conda,
    "ours": read_ours,
    "job": read_job,
}


# ------------------------------------------------------------------ the property ------


class Hang(BaseException):
    """An input took more than ``EXAMPLE_CPU_SECONDS`` of CPU (BaseException: no reader's
    ``except Exception`` may swallow it)."""


@dataclass
class Tally:
    """How many inputs one reader was given, and how they ended."""

    tried: int = 0
    accepted: int = 0
    refused: int = 0


def check(reader: Callable[[Any, Path], object], data: Any, tmp: Path, tally: Tally) -> None:
    """Run one input: a result or a UsageError passes; anything else propagates."""
    tally.tried += 1
    signal.setitimer(signal.ITIMER_VIRTUAL, EXAMPLE_CPU_SECONDS)
    try:
        reader(data, tmp)
    except UsageError as exc:
        assert exc.exit_code == 2
        str(exc)  # the message itself must render
        tally.refused += 1
    else:
        tally.accepted += 1
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)


@contextmanager
def bounded() -> Iterator[None]:
    """Install the CPU-time guard that :func:`check` arms per input (SIGVTALRM:
    pytest-timeout owns SIGALRM) and limit the address space to its current size plus
    ``EXTRA_MEMORY``, so that a bomb ends in MemoryError (a failure) instead of
    exhausting the machine."""

    def on_timer(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"one input took more than {EXAMPLE_CPU_SECONDS} s of CPU")

    previous = signal.signal(signal.SIGVTALRM, on_timer)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + EXTRA_MEMORY
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space() -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 4 << 30
