"""The run library of ``targets``: what ``import azureml`` finds inside a run.

Shipped with the agent and put first on the run's ``PYTHONPATH`` by the supervisor, so a
training script written for Azure ML v1 (``from azureml.core import Run``) runs unchanged
and its ``run.log(...)`` lands in the run's MLflow file store, which ``targets`` collects.
Stdlib only, Python >= 3.6: real v1 environments pin ``python=3.6``, so no
``from __future__ import annotations`` here and annotations are ``typing`` forms
(``Optional[str]``, ``Dict[str, Any]``), which 3.6 evaluates when a def runs. Set
``TARGETS_AZUREML_REAL=1`` in the run's environment variables to use the real SDK instead
(docs/azureml-v1.md).
"""

# Other ``azureml.*`` distributions installed in the run's environment stay importable.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

TARGETS_RUN_LIBRARY = True
