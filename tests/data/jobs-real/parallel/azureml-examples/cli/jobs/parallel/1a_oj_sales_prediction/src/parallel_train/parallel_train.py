"""Ours (not the example's code): "trains" one model per partition (Store, Brand): the
mean of --target_col after dropping --drop_cols, saved under --model_folder."""

import argparse
import json
import os

args = None


def init():
    global args
    parser = argparse.ArgumentParser()
    for name in ("--drop_cols", "--target_col", "--date_col", "--lagging_orders", "--model_folder"):
        parser.add_argument(name, required=True)
    args, _ = parser.parse_known_args()


def run(mini_batch, mini_batch_context):
    key = mini_batch_context.partition_key_value
    frame = mini_batch.sort_values(args.date_col)
    target = frame[args.target_col]
    kept = [c for c in frame.columns if c not in args.drop_cols.split(",")]
    name = "_".join(str(key[k]) for k in sorted(key))
    os.makedirs(args.model_folder, exist_ok=True)
    with open(os.path.join(args.model_folder, name + ".json"), "w") as out:
        json.dump(
            {
                "partition": {k: str(v) for k, v in key.items()},
                "mean": float(target.mean()),
                "columns": kept,
                "lags": args.lagging_orders.split(","),
            },
            out,
        )
    # One row per input row: each is a week this partition's model was trained on.
    return [f"{name} {week}" for week in frame[args.date_col]]
