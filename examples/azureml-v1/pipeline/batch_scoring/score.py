"""The entry script of a ParallelRunStep (v1's init()/run(mini_batch) contract, unchanged):
counts the words of each file of its mini-batch."""

import argparse
import os

keyword = None


def init():
    global keyword
    parser = argparse.ArgumentParser()
    parser.add_argument("--keyword", default="the")
    keyword, _ = parser.parse_known_args()
    keyword = keyword.keyword


def run(mini_batch):
    results = []
    for path in mini_batch:
        with open(path) as fh:
            words = fh.read().split()
        results.append(f"{os.path.basename(path)} {len(words)} {words.count(keyword)}")
    return results
