"""psycopg (the PostgreSQL driver most Python tools use) against Ingot's
PostgreSQL port: the extended protocol with parameters, a Grafana-style
time-series query, a transaction, SQLSTATEs on errors, and the catalog
queries Grafana's data source and DBeaver (through the JDBC driver) send to
learn the server, its schemas, tables and columns.

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

    with psycopg.connect(dsn, autocommit=True) as conn:
        out["grafana"] = grafana(conn)
        out["dbeaver"] = dbeaver(conn)

    try:
        psycopg.connect(dsn.replace(f"password={password}", "password=wrong")).close()
        out["wrong_password"] = None
    except psycopg.OperationalError as e:
        out["wrong_password"] = "password authentication failed" in str(e)

    print(json.dumps(out))


# Grafana's search-path filter, as its PostgreSQL data source writes it.
SEARCH_PATH = """quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"""


def grafana(conn) -> dict:
    """What Grafana's PostgreSQL data source sends: the version check, the
    schema, table and column pickers."""
    seen = {}
    seen["version"] = conn.execute(
        "SELECT current_setting('server_version_num')::int/100 as version"
    ).fetchone()[0]
    seen["timescaledb"] = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchall()
    seen["schemas"] = [
        r[0]
        for r in conn.execute(
            """SELECT schema_name AS "name" FROM information_schema.schemata
            WHERE schema_name NOT IN ('information_schema', 'pg_catalog', 'pg_toast')
            ORDER BY schema_name"""
        )
    ]
    seen["tables"] = [
        r[0]
        for r in conn.execute(
            f"""SELECT
            CASE WHEN {SEARCH_PATH}
              THEN quote_ident(table_name)
              ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
            END AS "table"
            FROM information_schema.tables
            WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog')
            ORDER BY CASE WHEN {SEARCH_PATH} THEN 0 ELSE 1 END, 1"""
        )
    ]
    seen["columns"] = [
        list(r)
        for r in conn.execute(
            f"""SELECT quote_ident(column_name) AS "column", data_type AS "type"
            FROM information_schema.columns
            WHERE
              CASE WHEN array_length(parse_ident('readings'),1) = 2
                THEN quote_ident(table_schema) = (parse_ident('readings'))[1]
                  AND quote_ident(table_name) = (parse_ident('readings'))[2]
                ELSE quote_ident(table_name) = 'readings'
                  AND {SEARCH_PATH}
              END"""
        )
    ]
    return seen


def dbeaver(conn) -> dict:
    """What DBeaver and the JDBC driver send on connect and when they open
    the database's tables."""
    seen = {}
    conn.execute("SET extra_float_digits = 3")
    conn.execute("SET application_name = 'DBeaver 25.1.5 - Main <plant>'")
    seen["schema"] = list(conn.execute("SELECT current_schema(),session_user").fetchone())
    namespaces = conn.execute(
        "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n "
        "LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 "
        "AND d.classoid='pg_namespace'::regclass ORDER BY nspname"
    ).fetchall()
    # The JDBC driver's test for an array type.
    seen["array_type"] = list(
        conn.execute(
            "SELECT typinput='pg_catalog.array_in'::regproc as is_array, typtype, typname, "
            "pg_type.oid FROM pg_catalog.pg_type WHERE pg_type.oid = 1034"
        ).fetchone()
    )
    seen["search_path"] = conn.execute("SHOW search_path").fetchone()[0]
    seen["server_version"] = conn.execute("SHOW server_version").fetchone()[0]
    seen["version"] = conn.execute("SELECT version()").fetchone()[0].split(" (")[0]
    # db.oid, then db.*: oid, datname, ...
    seen["database"] = [
        r[2]
        for r in conn.execute(
            "SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='plant'"
        )
    ]
    seen["standard_conforming_strings"] = conn.execute(
        "SELECT setting FROM pg_catalog.pg_settings where name='standard_conforming_strings'"
    ).fetchone()[0]
    # n.oid, then n.*: oid, nspname, ...
    plant = next(n[0] for n in namespaces if n[2] == "plant")
    seen["tables"] = [
        r[1]
        for r in conn.execute(
            "SELECT c.oid,c.relname,c.relkind,d.description,"
            "pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr, "
            "pg_catalog.pg_get_partkeydef(c.oid) as partition_key "
            "FROM pg_catalog.pg_class c "
            "LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 "
            "AND d.classoid='pg_class'::regclass "
            f"WHERE c.relnamespace={plant} AND c.relkind not in ('i','I','c')"
        )
    ]
    return seen


if __name__ == "__main__":
    main()
