"""Stand-in written for targets' corpus test (tests/test_jobs_corpus.py): a parallel entry
script of our own with the name the real job uses. init() runs once per worker and
run(mini_batch) once per mini-batch, as Azure ML's parallel steps call them; each item of
the mini-batch (a file path, or a row of an MLTable as a pandas frame) gives one line."""

import os


def init():
    print("stand-in parallel entry script: init in process", os.getpid())


def run(mini_batch):
    items = mini_batch if isinstance(mini_batch, list) else mini_batch.itertuples()
    return [str(item)[:80] for item in items]
