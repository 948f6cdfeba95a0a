"""Azure ML v1 SDK code, run against ``targets``: the same module paths as ``azureml``
under ``targets.azureml``, so that a v1 control script needs only its imports changed
(``from azureml.core.compute import ComputeTarget`` becomes ``from
targets.azureml.core.compute import ComputeTarget``).

Every class here is a front end of the library operations the CLI uses
(:mod:`targets.attachment`, :mod:`targets.clusters.lifecycle`): the rules (names, options,
host keys, secrets in the keyring) are theirs. See ``docs/azureml-v1.md``.
"""
