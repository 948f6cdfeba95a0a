"""Writes a small CSV into the folder the pipeline gives it (a v1 step script, unchanged)."""

import argparse
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--output", required=True)
parser.add_argument("--rows", type=int, default=10)
args = parser.parse_args()

os.makedirs(args.output, exist_ok=True)
rng = random.Random(7)
with open(os.path.join(args.output, "data.csv"), "w") as out:
    out.write("x,y\n")
    for _ in range(args.rows):
        x = rng.uniform(0, 10)
        out.write(f"{x:.3f},{3 * x + 1 + rng.gauss(0, 0.5):.3f}\n")
print(f"wrote {args.rows} rows to {args.output}")
