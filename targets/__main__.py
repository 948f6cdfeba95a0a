"""``python -m targets`` is the ``targets`` command."""

from targets.cli import main

main()
