"""Runs on Databricks. As in v1, each input and output arrives as `-<name> <path>` after
the script's own parameters."""

import argparse
import csv
import os

parser = argparse.ArgumentParser()
parser.add_argument("--column", default="y")
parser.add_argument("-prepared", required=True)
parser.add_argument("-summary", required=True)
args = parser.parse_args()

with open(os.path.join(args.prepared, "data.csv")) as fh:
    values = [float(row[args.column]) for row in csv.DictReader(fh)]
os.makedirs(args.summary, exist_ok=True)
with open(os.path.join(args.summary, "summary.txt"), "w") as out:
    out.write(f"{args.column}: n={len(values)} mean={sum(values) / len(values):.3f}\n")
print("summarized", len(values), "rows")
