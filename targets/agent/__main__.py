"""``python -m targets.agent supervise ROOT RUN_ID``: the detached owner of one run."""

import sys

from .supervisor import main

sys.exit(main(sys.argv[1:]))
