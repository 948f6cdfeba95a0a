"""``azureml.pipeline`` for ``targets``: v1 pipelines (``core``) and their steps
(``steps``), run by the v2 pipeline engine (:mod:`targets.jobs.pipeline`). See
``docs/azureml-v1.md``."""
