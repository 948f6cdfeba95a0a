"""Our stand-in for the example's componentC hello.py: appends a line to the data."""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--componentC_input")
parser.add_argument("--componentC_output")
args = parser.parse_args()
source = Path(args.componentC_input)
target = Path(args.componentC_output)
target.mkdir(parents=True, exist_ok=True)
for item in source.iterdir():
    if item.is_file():
        (target / item.name).write_text(item.read_text() + "component_c\n")
print("component C wrote", sorted(p.name for p in target.iterdir()))
