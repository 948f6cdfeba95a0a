"""Stand-in written for targets' corpus test (tests/test_jobs_corpus.py): same file name and
arguments as the script the real job runs, our own code. It prints its arguments, counts
the lines of every input file or folder it is given, and writes a small file into every
output folder it is given, so that later pipeline steps have something to read."""

import os
import sys


def is_output(key):
    return "output" in key or key.endswith(("_data", "_model", "_path", "_dir"))


def main(argv):
    print("stand-in", os.path.basename(__file__), "args:", argv)
    pairs = []
    i = 0
    while i < len(argv):
        if argv[i].startswith("--"):
            key = argv[i][2:]
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else ""
            pairs.append((key, value))
            i += 2 if value else 1
        else:
            i += 1
    for key, value in pairs:
        if os.path.isfile(value):
            with open(value, "rb") as handle:
                print(f"{key}: file with {sum(1 for _ in handle)} lines")
        elif os.path.isdir(value) and os.listdir(value):
            print(f"{key}: folder with {len(os.listdir(value))} entries")
        elif value and (is_output(key) or "outputs" in value):
            os.makedirs(value, exist_ok=True)
            with open(os.path.join(value, "part-0.csv"), "w") as handle:
                handle.write("x,y\n1,2\n3,4\n")
            print(f"{key}: wrote {value}/part-0.csv")
    os.makedirs("outputs", exist_ok=True)
    with open(os.path.join("outputs", "standin.txt"), "a") as handle:
        handle.write(" ".join(argv) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
