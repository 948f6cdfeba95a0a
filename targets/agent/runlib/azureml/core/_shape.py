"""What v1's ``Run.get_metrics()`` returns, built from what a run logged.

One implementation for both sides: the run library (inside the run) and the client
(``targets.runs.Run.get_metrics``, which imports this module) shape metrics here.
Stdlib only, Python >= 3.6 (no ``from __future__ import annotations``:
annotations are ``typing`` forms, evaluated when a def runs).

The shapes are v1's: a metric logged once with ``log`` is its value; logged several times,
or with ``log_list``, a list; ``log_row`` and ``log_table`` give ``{column: [values]}``;
images, confusion matrices and the like are their recorded value. A metric logged only
through MLflow (``mlflow.log_metric``) is shaped like ``log``: its value, or the list of its
values.
"""

from typing import Any, Dict, Iterable, List, Mapping, Optional, Set

__all__ = ["derived_names", "v1_metrics"]


def derived_names(records: Iterable[Mapping[str, Any]]) -> Set[str]:
    """The MLflow metric names the run library wrote for ``records`` (``name`` for
    scalars and lists, ``name.column`` for rows and tables)."""
    names: Set[str] = set()
    for entry in records:
        kind, name, value = entry.get("kind"), str(entry.get("name")), entry.get("value")
        if kind in ("scalar", "list"):
            names.add(name)
        elif kind in ("row", "table") and isinstance(value, dict):
            names.update("%s.%s" % (name, column) for column in value)
    return names


def v1_metrics(
    records: Iterable[Mapping[str, Any]],
    mlflow_history: Optional[Mapping[str, List[float]]] = None,
) -> Dict[str, Any]:
    """``records`` (the lines of ``metrics.jsonl``, in the order logged) and the MLflow
    metrics logged without the run library (``name -> values``), as v1 shapes them."""
    records = list(records)
    found: Dict[str, Any] = {}
    series: Dict[str, List[Any]] = {}
    for entry in records:
        kind, key, value = entry["kind"], entry["name"], entry["value"]
        if kind in ("scalar", "list"):
            values = series.setdefault(key, [])
            values.extend(value if kind == "list" and isinstance(value, list) else [value])
            found[key] = values[0] if len(values) == 1 and kind == "scalar" else list(values)
        elif kind in ("row", "table") and isinstance(value, dict):
            table = found.setdefault(key, {})
            for column, cell in value.items():
                cells = cell if kind == "table" and isinstance(cell, list) else [cell]
                table.setdefault(column, []).extend(cells)
        else:
            found[key] = value
    taken = derived_names(records)
    for key, values in sorted((mlflow_history or {}).items()):
        if key in taken or key in found or not values:
            continue
        found[key] = values[0] if len(values) == 1 else list(values)
    return found
