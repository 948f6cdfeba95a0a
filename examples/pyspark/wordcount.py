"""Count the words of a text with Spark and write the counts to ./outputs/counts.json.

Runs with ``framework: pyspark``: targets starts it with ``spark-submit``, so the
SparkSession below joins the master and configuration of the runconfig.
"""

import json
import sys
from pathlib import Path

from pyspark.sql import SparkSession

TEXT = """the quick brown fox jumps over the lazy dog
the dog sleeps and the fox runs"""


def main(argv: list) -> None:
    source = Path(argv[0]).read_text() if argv else TEXT
    spark = SparkSession.builder.getOrCreate()
    lines = spark.sparkContext.parallelize(source.splitlines(), 2)
    counts = dict(
        lines.flatMap(str.split)
        .map(lambda word: (word, 1))
        .reduceByKey(lambda a, b: a + b)
        .collect()
    )
    Path("outputs").mkdir(exist_ok=True)
    result = {
        "app_name": spark.conf.get("spark.app.name"),
        "master": spark.sparkContext.master,
        "counts": counts,
    }
    Path("outputs/counts.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    print("words:", sum(counts.values()), "distinct:", len(counts))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
