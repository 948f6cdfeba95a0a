"""Our stand-in for the example's predict.py."""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--model")
parser.add_argument("--test_data")
parser.add_argument("--predict_result")
args = parser.parse_args()
Path(args.predict_result).mkdir(parents=True, exist_ok=True)
(Path(args.predict_result) / "predictions.csv").write_text("prediction\n")
