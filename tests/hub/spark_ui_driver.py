"""A real Spark driver whose UI listens on the port given: ``python spark_ui_driver.py PORT``.

Runs one job (so the UI has a job page), prints ``ready``, and stops when its stdin closes. Stands in for
the notebook kernel's Spark driver in the hub tier's Spark UI test.
"""

from __future__ import annotations

import sys

from pyspark.sql import SparkSession


def main() -> None:
    port = sys.argv[1]
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("occam-ui-test")
        .config("spark.ui.port", port)
        .config("spark.port.maxRetries", "0")  # fail rather than move to another port
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    try:
        spark.range(100).count()
        print("ready", flush=True)
        sys.stdin.read()
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
