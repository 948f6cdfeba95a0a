"""Fixture for the corpus's hello-sweep.yml: a trial that takes --A, --B, --C and logs
``random_metric`` (the sweep's primary metric) with MLflow when it is installed and
MLFLOW_TRACKING_URI is set; it always prints ``random_metric=<value>``.

The metric is a deterministic function of the arguments so that tests can predict the
best trial: lower is better (the sweep minimizes it)."""

import argparse
import os

parser = argparse.ArgumentParser()
parser.add_argument("--A", type=float, required=True)
parser.add_argument("--B", type=str, required=True)
parser.add_argument("--C", type=float, required=True)
args = parser.parse_args()

metric = abs(args.A - args.C) + 0.01 * len(args.B)
print(f"A={args.A} B={args.B} C={args.C}")

# MLflow only when a tracking store is configured (targets and Azure ML set
# MLFLOW_TRACKING_URI for every run); a bare `python script.py` just prints.
try:
    import mlflow
except ImportError:
    mlflow = None
if not os.environ.get("MLFLOW_TRACKING_URI"):
    mlflow = None

if mlflow is not None:
    mlflow.log_param("B", args.B)
    mlflow.log_metric("random_metric", metric)
print(f"random_metric={metric}")
