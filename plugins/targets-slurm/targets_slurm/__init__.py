"""A Slurm compute target for ``targets``: runs become ``sbatch`` jobs on a login node."""

from targets_slurm.target import SlurmOptions, SlurmTarget

__all__ = ["SlurmOptions", "SlurmTarget"]
