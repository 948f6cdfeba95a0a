"""Ours (not the example's script): reads the passengers CSV named by --titanic_data
with Spark, keeps the columns a model would use, fills missing ages with the mean age,
and writes the result as CSV into the folder named by --wrangled_data."""

import argparse

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

parser = argparse.ArgumentParser()
parser.add_argument("--titanic_data")
parser.add_argument("--wrangled_data")
args = parser.parse_args()

spark = SparkSession.builder.getOrCreate()
passengers = spark.read.csv(args.titanic_data, header=True, inferSchema=True)
mean_age = passengers.select(F.avg("Age")).first()[0]
wrangled = passengers.select("PassengerId", "Survived", "Pclass", "Sex", "Age", "Fare").fillna(
    {"Age": mean_age}
)
wrangled.coalesce(1).write.mode("overwrite").csv(args.wrangled_data, header=True)
print("wrangled", wrangled.count(), "passengers into", args.wrangled_data, flush=True)
spark.stop()
