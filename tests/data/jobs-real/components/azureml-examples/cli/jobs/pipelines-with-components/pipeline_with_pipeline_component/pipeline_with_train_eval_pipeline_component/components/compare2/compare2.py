"""Our stand-in for the example's compare2.py: keeps the model with the higher score."""

import argparse
import shutil
from pathlib import Path

parser = argparse.ArgumentParser()
for name in ("model1", "eval_result1", "model2", "eval_result2", "best_model", "best_result"):
    parser.add_argument(f"--{name}")
args = parser.parse_args()


def score(folder: str) -> float:
    return float((Path(folder) / "report.txt").read_text().split()[1])


first = score(args.eval_result1) >= score(args.eval_result2)
model, result = (args.model1, args.eval_result1) if first else (args.model2, args.eval_result2)
shutil.copytree(model, args.best_model, dirs_exist_ok=True)
shutil.copytree(result, args.best_result, dirs_exist_ok=True)
print("best:", "model1" if first else "model2")
