"""Fixture for the corpus's hello-iris-*.yml jobs: read the iris CSV given on the command
line and print a summary. Standard library only (the original uses pandas)."""

import argparse
import csv
import os
from collections import Counter

parser = argparse.ArgumentParser()
parser.add_argument("--iris-csv", required=True)
args = parser.parse_args()

path = args.iris_csv
if os.path.isdir(path):  # a uri_folder input passed without the file name
    path = os.path.join(path, "iris.csv")
with open(path, newline="", encoding="utf-8") as handle:
    rows = list(csv.DictReader(handle))

print(f"iris csv: {args.iris_csv}")
print(f"rows: {len(rows)}")
species = Counter(row.get("species", "?") for row in rows)
for name, count in sorted(species.items()):
    print(f"  {name}: {count}")
