"""Fixture for the corpus's single-step/scikit-learn/iris/job.yml: train a classifier on
the iris CSV with the job's --C, --kernel and --coef0.

Uses scikit-learn's SVC when installed; otherwise a nearest-centroid classifier from the
standard library, so the job runs in a bare Python. Logs ``accuracy`` with MLflow when
installed and always prints it; writes ./outputs/model.txt."""

import argparse
import csv
import math
import os

parser = argparse.ArgumentParser()
parser.add_argument("--iris-csv", required=True)
parser.add_argument("--C", type=float, default=1.0)
parser.add_argument("--kernel", type=str, default="rbf")
parser.add_argument("--coef0", type=float, default=0.0)
args = parser.parse_args()

path = args.iris_csv
if os.path.isdir(path):
    path = os.path.join(path, "iris.csv")
with open(path, newline="", encoding="utf-8") as handle:
    rows = list(csv.reader(handle))
header, rows = rows[0], [r for r in rows[1:] if r]
features = [[float(v) for v in r[:-1]] for r in rows]
labels = [r[-1] for r in rows]

try:
    from sklearn.svm import SVC
except ImportError:
    SVC = None

if SVC is not None:
    model = SVC(C=args.C, kernel=args.kernel, coef0=args.coef0).fit(features, labels)
    predicted = list(model.predict(features))
    description = f"SVC(C={args.C}, kernel={args.kernel}, coef0={args.coef0})"
else:
    centroids = {}
    for label in sorted(set(labels)):
        members = [features[i] for i in range(len(labels)) if labels[i] == label]
        width = len(members[0])
        centroids[label] = [sum(m[c] for m in members) / len(members) for c in range(width)]
    predicted = [min(centroids, key=lambda c: math.dist(f, centroids[c])) for f in features]
    description = "nearest centroid (scikit-learn is not installed)"

accuracy = sum(predicted[i] == labels[i] for i in range(len(labels))) / len(labels)
print(f"columns: {', '.join(header)}")
print(f"model: {description}")
print(f"accuracy={accuracy}")

os.makedirs("outputs", exist_ok=True)
with open(os.path.join("outputs", "model.txt"), "w", encoding="utf-8") as handle:
    handle.write(description + "\n")

# MLflow only when a tracking store is configured (targets and Azure ML set
# MLFLOW_TRACKING_URI for every run); a bare `python script.py` just prints.
try:
    import mlflow
except ImportError:
    mlflow = None
if not os.environ.get("MLFLOW_TRACKING_URI"):
    mlflow = None
if mlflow is not None:
    mlflow.log_params({"C": args.C, "kernel": args.kernel, "coef0": args.coef0})
    mlflow.log_metric("accuracy", accuracy)
