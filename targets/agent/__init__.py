"""The agent: a stdlib-only program that does the work on a target.

Every module in this package uses the standard library only and runs on Python >= 3.8,
because it is shipped to remote machines and run with their system ``python3``. The local
target calls the same functions in-process.
"""

AGENT_VERSION = "1"
