"""Runs a parallel step on its target: Azure ML v1's ``ParallelRunStep`` and v2's
``type: parallel`` pipeline steps (shipped into the run's snapshot; standard library only,
Python 3.8 or newer; pandas is imported for tabular input only).

Input: the files of the ``--input`` folders, cut into mini-batches of
``--mini_batch_size`` files; or, with ``--table`` (an MLTable's paths and reader, as
JSON), the table's rows, cut into mini-batches of about ``--mini_batch_size`` bytes
(``"10kb"``, ``"1mb"``; a bare number is bytes) per file, or one mini-batch per value of
``--partition_keys``. ``--process_count_per_node`` worker processes each import the entry
script, call its ``init()`` once, then ``run(mini_batch)`` (a list of file paths, or a
pandas DataFrame; ``run(mini_batch, mini_batch_context)`` when it takes two arguments)
for the mini-batches they are given.

With ``--output_action append_row`` the rows ``run`` returns (a list, or a pandas
DataFrame whose rows are written space-separated) are written, in mini-batch order, to
``--append_row_to`` (a file path) or ``<--output>/<--append_row_file_name>``. A
mini-batch whose ``run`` raises, or outlives ``--timeout`` seconds, is tried again, up to
``--run_max_try`` tries; then it is a failed mini-batch and its items all count as
failed, as do items for which ``run`` returned no row. More failed items than
``--error_threshold``, or more failed mini-batches than ``--mini_batch_error_threshold``
(-1: any number), stop the run and fail it, naming the count. With ``--logs DIR`` each
worker's stdout and stderr go to ``DIR/stdout/processNNN.stdout.txt`` and
``DIR/stderr/processNNN.stderr.txt``.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import inspect
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import traceback
from types import ModuleType
from typing import Any

_state: dict[str, Any] = {"module": None, "timeout": 0, "context": False}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
_ENCODINGS = {
    "utf8": "utf-8",
    "utf8bom": "utf-8-sig",
    "iso88591": "latin-1",
    "latin1": "latin-1",
    "ascii": "ascii",
    "utf16": "utf-16",
    "utf32": "utf-32",
    "windows1252": "cp1252",
}


class MiniBatchContext:
    """The second argument of ``run(mini_batch, mini_batch_context)``."""

    def __init__(self, minibatch_index: int, partition_key_value: dict[str, Any]) -> None:
        self.minibatch_index = minibatch_index
        self.partition_key_value = partition_key_value
        self.dataset = None

    def __repr__(self) -> str:
        return (
            f"MiniBatchContext(minibatch_index={self.minibatch_index}, "
            f"partition_key_value={self.partition_key_value!r})"
        )


class _Timeout(BaseException):
    """Raised in a worker when ``run`` outlives the timeout (a BaseException, so an
    entry script's ``except Exception`` does not swallow it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout(f"run() did not return within the timeout of {_state['timeout']} s")


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("_targets_entry_script", path)
    if spec is None or spec.loader is None:
        raise SystemExit("cannot load the entry script " + path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _redirect(logs: str, number: int) -> None:
    for stream, fd in (("stdout", 1), ("stderr", 2)):
        folder = os.path.join(logs, stream)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"process{number:03d}.{stream}.txt")
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    for text_stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(text_stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def _takes_context(function: Any) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


def _init_worker(
    entry_script: str,
    arguments: list[str],
    counter: Any = None,
    logs: str = "",
    timeout: int = 0,
    level: str = "INFO",
) -> None:
    number = 0
    if counter is not None:
        with counter.get_lock():
            number = counter.value
            counter.value += 1
    if logs:
        _redirect(logs, number)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.argv = [entry_script, *arguments]
    folder = os.path.dirname(os.path.abspath(entry_script))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = _load(entry_script)
    if not hasattr(module, "run"):
        raise SystemExit("the entry script " + entry_script + " has no run(mini_batch)")
    if hasattr(module, "init"):
        module.init()
    _state["module"] = module
    _state["timeout"] = timeout
    _state["context"] = _takes_context(module.run)


def _rows(result: Any) -> list[str]:
    if result is None:
        return []
    if hasattr(result, "itertuples"):  # a pandas DataFrame
        return [" ".join(str(v) for v in row) for row in result.itertuples(index=False)]
    return [str(item) for item in result]


def _call(batch: Any, context: MiniBatchContext) -> Any:
    module = _state["module"]
    arguments = (batch, context) if _state["context"] else (batch,)
    timeout = int(_state["timeout"] or 0)
    if timeout <= 0 or not hasattr(signal, "SIGALRM"):
        return module.run(*arguments)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        return module.run(*arguments)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _run_batch(
    task: tuple[int, Any, int, dict[str, Any]],
) -> tuple[int, list[str] | None, str, int]:
    """(index, rows or None when every try failed, the last error, tries made)."""
    index, batch, tries, keys = task
    error = ""
    for attempt in range(1, tries + 1):
        copy = batch.copy() if hasattr(batch, "copy") else batch
        try:
            rows = _rows(_call(copy, MiniBatchContext(index, keys)))
        except (Exception, _Timeout):
            error = traceback.format_exc()
            print(
                f"mini-batch {index}: try {attempt} of {tries} failed:\n{error}",
                file=sys.stderr,
                flush=True,
            )
            continue
        sys.stdout.flush()
        return index, rows, "", attempt
    return index, None, error, tries


def _files(folders: list[str]) -> list[str]:
    found: list[str] = []
    for folder in folders:
        if os.path.isfile(folder):
            found.append(os.path.abspath(folder))
            continue
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            for name in sorted(names):
                found.append(os.path.abspath(os.path.join(root, name)))
    return found


def _size(text: str) -> tuple[int, str]:
    match = _SIZE.match(text)
    if match is None:
        raise SystemExit(f"mini_batch_size {text!r} is neither a number nor a size like '10kb'")
    return int(match.group(1)), (match.group(2) or "").lower()


def _table_files(folder: str, paths: list[dict[str, str]]) -> list[str]:
    found: list[str] = []
    for entry in paths:
        if "file" in entry:
            found.append(os.path.join(folder, entry["file"]))
        elif "folder" in entry:
            found.extend(_files([os.path.join(folder, entry["folder"])]))
        elif "pattern" in entry:
            pattern = os.path.join(folder, entry["pattern"])
            found.extend(sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)))
    return found


def _read_table(path: str, spec: dict[str, Any]) -> Any:
    pandas = importlib.import_module("pandas")

    reader = spec.get("reader", "delimited")
    options = spec.get("options") or {}
    if reader == "parquet":
        return pandas.read_parquet(path)
    if reader == "json_lines":
        return pandas.read_json(path, lines=True)
    encoding = str(options.get("encoding") or "utf8")
    return pandas.read_csv(
        path,
        sep=options.get("delimiter", ","),
        header=None if options.get("header") == "no_header" else 0,
        encoding=_ENCODINGS.get(encoding.replace("-", "").lower(), encoding),
    )


def _table_batches(
    folder: str, spec: dict[str, Any], size: int, keys: list[str]
) -> list[tuple[Any, dict[str, Any]]]:
    try:
        pandas = importlib.import_module("pandas")
    except ImportError:
        raise SystemExit(
            "tabular input (an MLTable) needs pandas in the step's environment: add pandas "
            "to its conda file"
        ) from None
    files = _table_files(folder, spec.get("paths") or [])
    if not files:
        raise SystemExit(f"the MLTable in {folder} names no file that exists")
    frames = [(path, _read_table(path, spec)) for path in files]
    if keys:
        table = pandas.concat([frame for _, frame in frames], ignore_index=True)
        missing = [key for key in keys if key not in table.columns]
        if missing:
            raise SystemExit(
                f"partition_keys {', '.join(missing)} are not columns of the table "
                f"(columns: {', '.join(map(str, table.columns))})"
            )
        batches = []
        for values, group in table.groupby(keys, sort=True):
            values = values if isinstance(values, tuple) else (values,)
            key = dict(zip(keys, values))  # noqa: B905 (strict= is 3.10; this runs on 3.8)
            batches.append((group.reset_index(drop=True), key))
        return batches
    out: list[tuple[Any, dict[str, Any]]] = []
    for path, frame in frames:
        per_row = os.path.getsize(path) / max(len(frame), 1)
        rows = max(1, int(size // max(per_row, 1)))
        for start in range(0, len(frame), rows):
            out.append((frame.iloc[start : start + rows].reset_index(drop=True), {}))
    return out


def _over(failed: int, threshold: int) -> bool:
    return threshold >= 0 and failed > threshold


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="parallel-driver")
    parser.add_argument("--entry_script", required=True)
    parser.add_argument("--input", action="append", default=[])
    parser.add_argument("--output", default="outputs")
    parser.add_argument("--mini_batch_size", default="10")
    parser.add_argument("--process_count_per_node", type=int, default=0)
    parser.add_argument("--error_threshold", type=int, default=-1)
    parser.add_argument("--mini_batch_error_threshold", type=int, default=-1)
    parser.add_argument("--run_max_try", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=0)
    parser.add_argument("--output_action", default="append_row")
    parser.add_argument("--append_row_file_name", default="parallel_run_step.txt")
    parser.add_argument("--append_row_to", default="")
    parser.add_argument("--logs", default="")
    parser.add_argument("--logging_level", default="INFO")
    parser.add_argument("--table", default="")
    parser.add_argument("--partition_keys", default="")
    parser.add_argument("--instances", type=int, default=1)
    own, arguments = list(argv), []
    if "--" in own:
        cut = own.index("--")
        own, arguments = own[:cut], own[cut + 1 :]
    args = parser.parse_args(own)
    number, unit = _size(args.mini_batch_size)
    tries = max(args.run_max_try, 1)
    if args.table:
        keys = [k for k in args.partition_keys.split(",") if k]
        size = number * _UNITS[unit or "b"]
        loaded = _table_batches(args.input[0], json.loads(args.table), size, keys)
        what = "rows"
        batches = [(i, frame, tries, key) for i, (frame, key) in enumerate(loaded)]
        total = sum(len(frame) for frame, _ in loaded)
    else:
        if unit:
            raise SystemExit(f"mini_batch_size {args.mini_batch_size!r}: give a number of files")
        files = _files(args.input)
        size = max(number, 1)
        what = "files"
        starts = range(0, len(files), size)
        batches = [(i, files[s : s + size], tries, {}) for i, s in enumerate(starts)]
        total = len(files)
    workers = args.process_count_per_node or os.cpu_count() or 1
    workers = max(1, min(workers, len(batches) or 1))
    print(
        f"parallel run: {total} {what}, {len(batches)} mini-batches, {workers} worker processes"
        + (f" (logs in {args.logs})" if args.logs else ""),
        flush=True,
    )
    if args.instances > 1:
        print(
            f"parallel run: the {args.instances} instances asked for run as worker processes "
            "on this machine",
            flush=True,
        )
    results: dict[int, list[str]] = {}
    failed = failed_batches = 0
    stopped = ""
    counter = multiprocessing.Value("i", 0)
    initargs = (args.entry_script, arguments, counter, args.logs, args.timeout, args.logging_level)
    with multiprocessing.Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
        for index, rows, error, attempts in pool.imap_unordered(_run_batch, batches):
            items = len(batches[index][1])
            if rows is None:
                failed += items
                failed_batches += 1
                print(
                    f"mini-batch {index} failed after {attempts} tries:\n{error}",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                failed += max(items - len(rows), 0)
                results[index] = rows
                again = f" (try {attempts})" if attempts > 1 else ""
                print(f"mini-batch {index}: {len(rows)} rows{again}", flush=True)
            if _over(failed, args.error_threshold):
                stopped = f"{failed} failed {what} exceed error_threshold {args.error_threshold}"
            elif _over(failed_batches, args.mini_batch_error_threshold):
                stopped = (
                    f"{failed_batches} failed mini-batches exceed mini_batch_error_threshold "
                    f"{args.mini_batch_error_threshold}"
                )
            if stopped:
                pool.terminate()
                break
    if args.output_action == "append_row":
        path = args.append_row_to or os.path.join(args.output, args.append_row_file_name)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as out:
            for index in sorted(results):
                for row in results[index]:
                    out.write(row + "\n")
        print(f"wrote {path}", flush=True)
    print(
        f"parallel run: {failed} of {total} {what} failed, {failed_batches} of "
        f"{len(batches)} mini-batches failed",
        flush=True,
    )
    if stopped:
        print(f"parallel run failed: {stopped}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
