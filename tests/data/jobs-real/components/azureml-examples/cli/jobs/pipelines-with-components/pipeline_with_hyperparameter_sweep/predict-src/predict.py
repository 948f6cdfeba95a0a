"""Our stand-in for the example's predict.py: shows the model it was given."""

import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--model")
parser.add_argument("--test_data")
parser.add_argument("--predict_result")
args = parser.parse_args()
model = (Path(args.model) / "MLmodel").read_text()
rows = (Path(args.test_data) / "test.csv").read_text().splitlines()
print("model score:", model.split("score: ")[1].strip(), "rows:", len(rows))
Path(args.predict_result).mkdir(parents=True, exist_ok=True)
(Path(args.predict_result) / "predictions.csv").write_text("prediction\n" + "x\n" * len(rows))
