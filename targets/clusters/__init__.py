"""Managed clusters: nodes a provider creates on demand, a queue of runs waiting for nodes,
and multi-node distributed launches on them.

- :mod:`targets.clusters.model`: the provisioning settings (Azure ML's names).
- :mod:`targets.clusters.provider`: the contract of node providers (``docker``, ``azure``,
  ``ssh``), discovered through the entry-point group ``targets.providers``.
- :mod:`targets.clusters.distributed`: re-exports :mod:`targets.distributed` (per-node
  launch plans: torchrun, mpirun, TF_CONFIG), a core concept.
"""
