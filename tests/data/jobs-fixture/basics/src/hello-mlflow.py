"""Fixture for the corpus's hello-mlflow.yml: log a parameter, a metric and an artifact
with MLflow when it is installed, else print them."""

import os

os.makedirs("outputs", exist_ok=True)
with open(os.path.join("outputs", "hello.txt"), "w", encoding="utf-8") as handle:
    handle.write("hello mlflow\n")

# MLflow only when a tracking store is configured (targets and Azure ML set
# MLFLOW_TRACKING_URI for every run); a bare `python script.py` just prints.
try:
    import mlflow
except ImportError:
    mlflow = None
if not os.environ.get("MLFLOW_TRACKING_URI"):
    mlflow = None

if mlflow is not None:
    mlflow.log_param("hello_param", "world")
    mlflow.log_metric("hello_metric", 0.5)
    mlflow.log_artifact(os.path.join("outputs", "hello.txt"))
    print("logged hello_param, hello_metric and outputs/hello.txt to MLflow")
else:
    print("mlflow is not installed or MLFLOW_TRACKING_URI is not set")
    print("hello_param=world")
    print("hello_metric=0.5")
