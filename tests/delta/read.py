"""Reads a Delta table with Python deltalake and with Polars, and prints
what both see as one JSON object:

- "version": the table's version;
- "schema": each column's type as Polars reads it;
- "rows": every row, sorted, each as a list of values in column order, times
  as nanoseconds since the epoch (from `time_ns`) and as microseconds (from
  `time`, which is Delta's timestamp);
- "polars_rows": the row count Polars read, which must equal deltalake's.

Usage: read.py TABLE_URI. For s3:// the AWS_* variables give the endpoint,
region and keys.
"""

import decimal
import json
import os
import sys

import polars as pl
from deltalake import DeltaTable


def storage_options(uri):
    if not uri.startswith("s3://"):
        return None
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT"],
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }


def value(v):
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        # decimal(20,0) holds Ingot's unsigned integers.
        return int(v) if v == v.to_integral_value() else str(v)
    if isinstance(v, float) and v != v:
        return "NaN"
    return v


def main():
    uri = sys.argv[1]
    options = storage_options(uri)
    table = DeltaTable(uri, storage_options=options)
    frame = pl.from_arrow(table.to_pyarrow_table())
    by_polars = pl.read_delta(uri, storage_options=options)
    # Microseconds since the epoch, as Delta keeps `time`.
    frame = frame.with_columns(pl.col("time").dt.epoch("us").alias("time"))
    columns = frame.columns
    rows = sorted(
        ([value(v) for v in row] for row in frame.iter_rows()),
        key=lambda r: json.dumps(r, sort_keys=True),
    )
    print(
        json.dumps(
            {
                "version": table.version(),
                "columns": columns,
                "schema": {name: str(t) for name, t in by_polars.schema.items()},
                "rows": rows,
                "polars_rows": by_polars.height,
            }
        )
    )


main()
