"""Our stand-in for the example's hello.py: copies the input folder, prints the string."""

import argparse
import shutil

parser = argparse.ArgumentParser()
parser.add_argument("--input_data")
parser.add_argument("--input_string")
parser.add_argument("--output_data")
args = parser.parse_args()
print("input string:", args.input_string)
shutil.copytree(args.input_data, args.output_data, dirs_exist_ok=True)
