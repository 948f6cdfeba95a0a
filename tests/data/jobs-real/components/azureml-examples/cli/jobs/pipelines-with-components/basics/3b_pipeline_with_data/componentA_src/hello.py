"""Our stand-in for the example's componentA hello.py: appends a line to the data."""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--componentA_input")
parser.add_argument("--componentA_output")
args = parser.parse_args()
source = Path(args.componentA_input)
target = Path(args.componentA_output)
target.mkdir(parents=True, exist_ok=True)
for item in source.iterdir():
    if item.is_file():
        (target / item.name).write_text(item.read_text() + "component_a\n")
print("component A wrote", sorted(p.name for p in target.iterdir()))
