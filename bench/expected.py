#!/usr/bin/env python3
"""Writes DuckDB's answers to q1..q8 for a workload preset, as the reference
that Ingot's results are checked against.

    pip install duckdb numpy pyarrow
    python3 bench/expected.py --preset tiny     # -> bench/expected/tiny/q1.jsonl ...

The data comes from the reference generator (bench/workload/gen.py, Parquet);
the queries from bench/workload/queries.sql, translated to DuckDB's dialect:
date_bin -> time_bucket, last_value(x ORDER BY time) -> arg_max(x, time).
Each output line is one row as a JSON array; timestamps are integers
(nanoseconds since the epoch), floats are written exactly (repr).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workload")


def queries(path):
    out, name = [], None
    for line in open(path):
        m = re.match(r"-- (q\d+)", line)
        if m:
            name = m.group(1)
        elif line.strip() and not line.startswith("--") and name:
            out.append((name, line.strip().rstrip(";")))
            name = None
    return out


def to_duckdb(sql):
    sql = sql.replace("date_bin(", "time_bucket(")
    return re.sub(r"last_value\((\w+) ORDER BY (\w+)\)", r"arg_max(\1, \2)", sql)


def main():
    import duckdb
    import pyarrow as pa

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", required=True)
    ap.add_argument("--out", help="output folder (default bench/expected/PRESET)")
    a = ap.parse_args()
    out = a.out or os.path.join(HERE, "expected", a.preset)
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as data:
        subprocess.run(
            [sys.executable, os.path.join(WORKLOAD, "gen.py"), "--preset", a.preset, "--format", "parquet", "--out", data],
            check=True,
        )
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE VIEW readings AS SELECT * FROM read_parquet('{data}/*.parquet')")
        for name, sql in queries(os.path.join(WORKLOAD, "queries.sql")):
            table = con.sql(to_duckdb(sql)).to_arrow_table()
            columns = []
            for col in table.columns:
                if pa.types.is_timestamp(col.type):
                    col = col.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
                elif pa.types.is_decimal(col.type) and col.type.scale == 0:  # sum() of integers
                    col = col.cast(pa.int64())
                columns.append(col.to_pylist())
            with open(os.path.join(out, f"{name}.jsonl"), "w") as f:
                for row in zip(*columns):
                    f.write(json.dumps([int(v) if isinstance(v, int) else v for v in row]) + "\n")
            print(f"{name}: {table.num_rows} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
