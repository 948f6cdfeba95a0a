"""A training script written for Azure ML v1, unchanged: its hyperparameters arrive as
command-line arguments (HyperDrive appends ``--learning_rate <value> --batch_size
<value>``), and it logs the primary metric once per epoch through ``Run.get_context()``.

It fits a logistic regression by mini-batch gradient descent on a small synthetic data
set (pure Python, no packages), so that the sweep runs in seconds anywhere."""

import argparse
import math
import random

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--learning_rate", type=float, default=0.1)
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()

run = Run.get_context()
run.log("learning_rate", args.learning_rate)
run.log("batch_size", args.batch_size)

rng = random.Random(7)  # the same data for every trial


def sample():
    x = [rng.gauss(2, 1), rng.gauss(0, 1)]
    label = 1 if 1.5 * x[0] - 2.0 * x[1] - 4.0 + rng.gauss(0, 0.5) > 0 else 0
    return x, label


train = [sample() for _ in range(600)]
validation = [sample() for _ in range(200)]
weights, bias = [0.0, 0.0], 0.0


def predict(x):
    z = weights[0] * x[0] + weights[1] * x[1] + bias
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))


for _ in range(args.epochs):
    for start in range(0, len(train), args.batch_size):
        batch = train[start : start + args.batch_size]
        grad_w, grad_b = [0.0, 0.0], 0.0
        for x, label in batch:
            error = predict(x) - label
            grad_w = [grad_w[0] + error * x[0], grad_w[1] + error * x[1]]
            grad_b += error
        step = args.learning_rate / len(batch)
        weights = [weights[0] - step * grad_w[0], weights[1] - step * grad_w[1]]
        bias -= step * grad_b
    correct = sum((predict(x) > 0.5) == bool(label) for x, label in validation)
    run.log("validation_acc", correct / len(validation))

print("final validation_acc", correct / len(validation))
