"""Our stand-in for the example's eval.py: writes a report of the scores."""

import argparse
import json
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--scoring_result")
parser.add_argument("--eval_output")
args = parser.parse_args()
score = json.loads((Path(args.scoring_result) / "score.json").read_text())
Path(args.eval_output).mkdir(parents=True, exist_ok=True)
report = f"score {score['score']:g} over {score['scored_rows']} rows\n"
(Path(args.eval_output) / "report.txt").write_text(report)
print("report:", report.strip())
