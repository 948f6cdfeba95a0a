"""Fits y = a*x + b by gradient descent on the prepared data and logs through
Run.get_context() (a v1 training script, unchanged)."""

import argparse
import csv
import os

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--input", required=True)
parser.add_argument("--learning-rate", type=float, default=0.01)
args = parser.parse_args()

run = Run.get_context()
with open(os.path.join(args.input, "data.csv")) as fh:
    rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(fh)]

a = b = 0.0
for _ in range(200):
    grad_a = sum((a * x + b - y) * x for x, y in rows) / len(rows)
    grad_b = sum(a * x + b - y for x, y in rows) / len(rows)
    a -= args.learning_rate * grad_a / 10
    b -= args.learning_rate * grad_b
loss = sum((a * x + b - y) ** 2 for x, y in rows) / len(rows)
run.log("loss", loss)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as out:
    out.write(f"a={a:.3f} b={b:.3f}\n")
print(f"trained on {len(rows)} rows: a={a:.3f} b={b:.3f} loss={loss:.3f}")
