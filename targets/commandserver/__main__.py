"""``python -m targets.commandserver``: the command server (started by ``targets``)."""

import sys

from targets.commandserver.server import main

sys.exit(main())
