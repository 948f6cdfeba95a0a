"""Prints which interpreter runs it: shows the environment targets built from the spec."""

import os
import sys

print(f"python {sys.version.split()[0]} at {sys.executable}")
print(f"prefix {sys.prefix}")
print(f"GREETING={os.environ.get('GREETING', '')}")
