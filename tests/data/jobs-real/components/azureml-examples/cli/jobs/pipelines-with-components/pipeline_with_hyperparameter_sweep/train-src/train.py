"""Our stand-in for the example's train.py: logs a made-up f1 score for the parameters."""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--C", type=float)
parser.add_argument("--kernel")
parser.add_argument("--coef0", type=float)
parser.add_argument("--model_output")
parser.add_argument("--test_data")
args, _ = parser.parse_known_args()
Path(args.model_output).mkdir(parents=True, exist_ok=True)
(Path(args.model_output) / "MLmodel").write_text(f"C: {args.C}\nkernel: {args.kernel}\n")
print("training_f1_score", args.C * args.coef0)
