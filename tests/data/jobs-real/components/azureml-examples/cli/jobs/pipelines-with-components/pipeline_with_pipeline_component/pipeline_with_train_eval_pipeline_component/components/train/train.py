"""Our stand-in for the example's train.py: records its arguments as the "model"."""

import argparse
import json
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--training_data")
parser.add_argument("--max_epocs", "--max_epochs", dest="epochs", type=int)
parser.add_argument("--learning_rate", type=float)
parser.add_argument("--learning_rate_schedule")
parser.add_argument("--model_output")
args = parser.parse_args()
rows = sum(len(p.read_text().splitlines()) for p in Path(args.training_data).glob("*.csv"))
model = {
    "epochs": args.epochs,
    "learning_rate": args.learning_rate,
    "schedule": args.learning_rate_schedule,
    "rows": rows,
}
Path(args.model_output).mkdir(parents=True, exist_ok=True)
(Path(args.model_output) / "model.json").write_text(json.dumps(model))
print("trained", json.dumps(model, sort_keys=True))
