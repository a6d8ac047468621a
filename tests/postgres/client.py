"""psycopg (the PostgreSQL driver most Python tools use) against Ingot's
PostgreSQL port: the extended protocol with parameters, a Grafana-style
time-series query, a transaction, and SQLSTATEs on errors.

Usage: client.py HOST PORT PASSWORD. Prints one JSON object of what it saw;
the Rust test compares it with Ingot's answers over HTTP.
"""

import datetime as dt
import json
import sys

import psycopg


def main() -> None:
    host, port, password = sys.argv[1], sys.argv[2], sys.argv[3]
    dsn = f"host={host} port={port} dbname=plant user=grafana password={password}"
    out = {}
    # Not autocommit: psycopg opens a transaction (BEGIN) first, as most
    # applications do.
    with psycopg.connect(dsn) as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT time, device, temperature FROM readings "
            "WHERE device = %s AND time >= %s ORDER BY time",
            ("d1", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)),
        )
        out["types"] = [d.type_code for d in cur.description]
        rows = cur.fetchall()
        assert all(r[0].tzinfo is not None for r in rows), rows
        out["d1"] = [[r[0].isoformat(), r[1], r[2]] for r in rows]

        # What Grafana's PostgreSQL data source sends for a time series
        # panel: $__timeFilter(time) and $__timeGroup(time, '1m') expanded.
        cur.execute(
            "SELECT date_bin(INTERVAL '1 minute', time) AS time, device AS metric, "
            "avg(temperature) AS value FROM readings "
            "WHERE time BETWEEN %s AND %s GROUP BY 1, 2 ORDER BY 1, 2",
            (
                dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.timezone.utc),
                dt.datetime(2026, 1, 1, 0, 10, tzinfo=dt.timezone.utc),
            ),
        )
        out["series"] = [[t.isoformat(), m, v] for t, m, v in cur.fetchall()]

        cur.execute("SELECT count(*) FROM readings WHERE temperature > %s", (21.0,))
        out["hot"] = cur.fetchone()[0]

        try:
            cur.execute("SELECT * FROM no_such_table")
        except psycopg.errors.UndefinedTable as e:
            out["undefined_table"] = e.sqlstate
        conn.rollback()
        try:
            cur.execute("SELECT no_such_column FROM readings")
        except psycopg.Error as e:
            out["undefined_column"] = e.sqlstate
        conn.rollback()
        cur.execute("SELECT current_database()")
        out["database"] = cur.fetchone()[0]

    with psycopg.connect(dsn, autocommit=True) as conn:
        out["create"] = conn.execute("CREATE DATABASE IF NOT EXISTS archive").statusmessage
        out["create_table"] = None
        try:
            conn.execute("CREATE TABLE t (a int)")
        except psycopg.Error as e:
            out["create_table"] = e.sqlstate

    try:
        psycopg.connect(dsn.replace(f"password={password}", "password=wrong")).close()
        out["wrong_password"] = None
    except psycopg.OperationalError as e:
        out["wrong_password"] = "password authentication failed" in str(e)

    print(json.dumps(out))


if __name__ == "__main__":
    main()
