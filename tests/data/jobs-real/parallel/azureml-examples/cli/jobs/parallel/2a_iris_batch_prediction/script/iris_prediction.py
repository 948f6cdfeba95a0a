"""Ours (not the example's code): scores iris rows with the threshold model in --model.

init() reads --model (a folder holding model.json) from sys.argv with parse_known_args:
the parallel step's other program_arguments belong to the driver. run() gets a pandas
DataFrame of rows and returns one "row-index class" line per row."""

import argparse
import json
import os

model = {}


def init():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    args, _ = parser.parse_known_args()
    with open(os.path.join(args.model, "model.json")) as handle:
        model.update(json.load(handle))
    print("loaded model", model)


def run(mini_batch):
    rows = []
    for values in mini_batch.itertuples(index=False):
        petal_length = float(values[2])
        label = "setosa" if petal_length < model["setosa_below"] else "other"
        rows.append(f"{values[0]} {petal_length} {label}")
    return rows
