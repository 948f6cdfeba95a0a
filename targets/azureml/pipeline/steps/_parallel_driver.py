"""Runs a ParallelRunStep on its target (shipped into the step's snapshot as
``_targets_parallel_run.py``; standard library only, Python 3.8 or newer).

The files of the input folders are cut into mini-batches of ``--mini_batch_size`` files;
``--process_count_per_node`` worker processes each import the entry script, call its
``init()`` once, then ``run(mini_batch)`` (a list of file paths) for the mini-batches
they are given. With ``--output_action append_row`` the rows ``run`` returns (a list, or
a pandas DataFrame whose rows are written space-separated) are written, in mini-batch
order, to ``<output>/<append_row_file_name>``. A mini-batch that raises is tried again up
to ``--run_max_try`` times; then its files count as failed, as do files for which
``run`` returned no row. More failed files than ``--error_threshold`` (-1: any number)
fail the step.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import sys
import traceback
from types import ModuleType
from typing import Any

_entry: dict[str, Any] = {"module": None}


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("_targets_entry_script", path)
    if spec is None or spec.loader is None:
        raise SystemExit("cannot load the entry script " + path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _init_worker(entry_script: str, arguments: list[str]) -> None:
    sys.argv = [entry_script, *arguments]
    folder = os.path.dirname(os.path.abspath(entry_script))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = _load(entry_script)
    if not hasattr(module, "run"):
        raise SystemExit("the entry script " + entry_script + " has no run(mini_batch)")
    if hasattr(module, "init"):
        module.init()
    _entry["module"] = module


def _rows(result: Any) -> list[str]:
    if result is None:
        return []
    if hasattr(result, "itertuples"):  # a pandas DataFrame
        return [" ".join(str(v) for v in row) for row in result.itertuples(index=False)]
    return [str(item) for item in result]


def _run_batch(task: tuple[int, list[str], int]) -> tuple[int, list[str] | None, str]:
    index, files, tries = task
    module = _entry["module"]
    error = ""
    for _ in range(tries):
        try:
            return index, _rows(module.run(list(files))), ""
        except Exception:
            error = traceback.format_exc()
    return index, None, error


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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="_targets_parallel_run.py")
    parser.add_argument("--entry_script", required=True)
    parser.add_argument("--input", action="append", default=[])
    parser.add_argument("--output", required=True)
    parser.add_argument("--mini_batch_size", type=int, default=10)
    parser.add_argument("--process_count_per_node", type=int, default=0)
    parser.add_argument("--error_threshold", type=int, default=-1)
    parser.add_argument("--run_max_try", type=int, default=3)
    parser.add_argument("--output_action", default="append_row")
    parser.add_argument("--append_row_file_name", default="parallel_run_step.txt")
    own, arguments = list(argv), []
    if "--" in own:
        cut = own.index("--")
        own, arguments = own[:cut], own[cut + 1 :]
    args = parser.parse_args(own)
    files = _files(args.input)
    size = max(args.mini_batch_size, 1)
    tries = max(args.run_max_try, 1)
    batches = [(i, files[s : s + size], tries) for i, s in enumerate(range(0, len(files), size))]
    workers = args.process_count_per_node or os.cpu_count() or 1
    workers = max(1, min(workers, len(batches) or 1))
    print(
        f"parallel run: {len(files)} files, {len(batches)} mini-batches of up to {size}, "
        f"{workers} worker processes",
        flush=True,
    )
    results: dict[int, list[str]] = {}
    failed = 0
    with multiprocessing.Pool(
        workers, initializer=_init_worker, initargs=(args.entry_script, arguments)
    ) as pool:
        for index, rows, error in pool.imap_unordered(_run_batch, batches):
            batch = batches[index][1]
            if rows is None:
                failed += len(batch)
                print(f"mini-batch {index} failed:\n{error}", file=sys.stderr, flush=True)
                continue
            failed += max(len(batch) - len(rows), 0)
            results[index] = rows
            print(f"mini-batch {index}: {len(rows)} rows", flush=True)
    os.makedirs(args.output, exist_ok=True)
    if args.output_action == "append_row":
        path = os.path.join(args.output, args.append_row_file_name)
        with open(path, "w") as out:
            for index in sorted(results):
                for row in results[index]:
                    out.write(row + "\n")
        print(f"wrote {path}", flush=True)
    print(f"parallel run: {failed} of {len(files)} files failed", flush=True)
    if args.error_threshold >= 0 and failed > args.error_threshold:
        print(
            f"parallel run failed: {failed} failed files exceed error_threshold "
            f"{args.error_threshold}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
