"""Ours (not the example's code): copies the sales CSV into an MLTable folder (the
partitioning by --partition_keys is the parallel step's partition_keys)."""

import argparse
import os
import shutil

parser = argparse.ArgumentParser()
parser.add_argument("--data_source", required=True)
parser.add_argument("--partition_keys", required=True)
parser.add_argument("--tabular_output_data", required=True)
args = parser.parse_args()
os.makedirs(args.tabular_output_data, exist_ok=True)
shutil.copy(args.data_source, os.path.join(args.tabular_output_data, "data.csv"))
with open(os.path.join(args.tabular_output_data, "MLTable"), "w") as table:
    table.write(
        "paths:\n  - file: ./data.csv\ntransformations:\n  - read_delimited:\n"
        "      delimiter: ','\n      encoding: utf8\n      header: all_files_same_headers\n"
    )
print("partition keys:", args.partition_keys)
