"""``azureml.train`` for ``targets``: HyperDrive (:mod:`targets.azureml.train.hyperdrive`),
run by the v2 sweep engine (:mod:`targets.jobs.sweep`). See ``docs/azureml-v1.md``."""
