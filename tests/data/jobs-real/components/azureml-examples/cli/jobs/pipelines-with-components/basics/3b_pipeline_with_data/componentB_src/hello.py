"""Our stand-in for the example's componentB hello.py: appends a line to the data."""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--componentB_input")
parser.add_argument("--componentB_output")
args = parser.parse_args()
source = Path(args.componentB_input)
target = Path(args.componentB_output)
target.mkdir(parents=True, exist_ok=True)
for item in source.iterdir():
    if item.is_file():
        (target / item.name).write_text(item.read_text() + "component_b\n")
print("component B wrote", sorted(p.name for p in target.iterdir()))
