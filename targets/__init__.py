"""targets: attach compute targets and run Azure ML-style run configurations on them."""

from targets._version import __version__

__all__ = ["__version__"]
