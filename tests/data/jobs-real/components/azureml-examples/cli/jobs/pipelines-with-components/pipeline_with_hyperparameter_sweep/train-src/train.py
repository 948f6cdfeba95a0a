"""Our stand-in for the example's train.py: reads the data, writes a "model" that names
its parameters, and logs a made-up f1 score for them (with the run library's v1 Run,
which needs no MLflow package)."""

import argparse
from pathlib import Path

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--C", type=float)
parser.add_argument("--kernel")
parser.add_argument("--coef0", type=float)
parser.add_argument("--model_output")
parser.add_argument("--test_data")
args, _ = parser.parse_known_args()
rows = Path(args.data).read_text().splitlines()[1:]
score = round(args.C * args.coef0, 6)
Path(args.model_output).mkdir(parents=True, exist_ok=True)
(Path(args.model_output) / "MLmodel").write_text(
    f"C: {args.C}\nkernel: {args.kernel}\ncoef0: {args.coef0}\nscore: {score}\n"
)
Path(args.test_data).mkdir(parents=True, exist_ok=True)
(Path(args.test_data) / "test.csv").write_text("\n".join(rows) + "\n")
Run.get_context().log("training_f1_score", score)
print("trained on", len(rows), "rows; training_f1_score", score)
