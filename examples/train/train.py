"""A tiny "training" script: reads its arguments, writes a result to ./outputs."""

import argparse
import json
import os
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--note", default="")
args = parser.parse_args()

loss = 1.0
for epoch in range(1, args.epochs + 1):
    loss *= 1.0 - args.alpha
    print(f"epoch {epoch}: loss {loss:.4f}", flush=True)

Path("outputs").mkdir(exist_ok=True)
result = {"alpha": args.alpha, "epochs": args.epochs, "loss": loss, "note": args.note}
Path("outputs", "result.json").write_text(json.dumps(result, indent=2) + "\n")
print(f"note: {args.note}")
print(f"RUN_KIND={os.environ.get('RUN_KIND', '')}")
