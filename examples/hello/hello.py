"""The hello example: prints where it runs, writes an output file and a log file."""

import argparse
import os
import platform
import sys
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--greeting", default="hello")
parser.add_argument("--name", default="world")
args = parser.parse_args()

print(f"{args.greeting}, {args.name}!")
print(f"running on {platform.node()} with Python {platform.python_version()} ({sys.executable})")
print(f"run id: {os.environ.get('TARGETS_RUN_ID', '(not under targets)')}")

Path("outputs").mkdir(exist_ok=True)
Path("outputs/greeting.txt").write_text(f"{args.greeting}, {args.name}!\n")
Path("logs").mkdir(exist_ok=True)
Path("logs/hello.log").write_text("wrote outputs/greeting.txt\n")
print("wrote outputs/greeting.txt")
