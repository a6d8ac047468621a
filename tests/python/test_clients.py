"""Ingot through the clients people already use: ADBC's Flight SQL driver
(queries, prepared statements, catalog calls, adbc_ingest) and the InfluxDB
v2 Python client (line-protocol writes)."""

import os

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pytest
import requests
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

GRPC = os.environ["INGOT_GRPC_ADDR"]
HTTP = os.environ["INGOT_HTTP_ADDR"]
TOKEN = os.environ["INGOT_TEST_TOKEN"]


def connect(token=TOKEN):
    kwargs = {}
    if token is not None:
        kwargs[adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value] = f"Bearer {token}"
    return flightsql.connect(f"grpc://{GRPC}", db_kwargs=kwargs, autocommit=True)


def query(sql, parameters=None):
    with connect() as conn, conn.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetch_arrow_table().to_pylist()


def test_influxdb_client_writes_then_adbc_reads():
    with InfluxDBClient(url=f"http://{HTTP}", token=TOKEN, org="ignored") as client:
        write = client.write_api(write_options=SYNCHRONOUS)
        write.write(
            bucket="py",
            record=[
                Point("chiller").tag("unit", "c1").field("kw", 12.5).time(1_700_000_000_000_000_000, WritePrecision.NS),
                Point("chiller").tag("unit", "c2").field("kw", 7.25).time(1_700_000_000_000_000_001, WritePrecision.NS),
            ],
        )
        write.write(bucket="py", record="chiller,unit=c3 kw=1.0 1700000000", write_precision=WritePrecision.S)
    rows = query("SELECT unit, kw FROM py.chiller ORDER BY unit")
    assert rows == [
        {"unit": "c1", "kw": 12.5},
        {"unit": "c2", "kw": 7.25},
        {"unit": "c3", "kw": 1.0},
    ]


def test_adbc_ingest_prepared_statement_and_catalog():
    table = pa.table(
        {
            "time": pa.array([1, 2, 3], pa.timestamp("ns", tz="UTC")),
            "pump": pa.array(["a", "b", "a"]),
            "flow": pa.array([1.0, 2.0, 3.0]),
        }
    )
    with connect() as conn:
        with conn.cursor() as cur:
            cur.adbc_ingest("pyflow", table, mode="create")
        with conn.cursor() as cur, pytest.raises(Exception, match="already exists"):
            cur.adbc_ingest("pyflow", table, mode="create")
        with conn.cursor() as cur:
            # The same rows again: (series, time) duplicates, so still 3 rows.
            cur.adbc_ingest("pyflow", table, mode="append")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) AS n, sum(flow) AS s FROM pyflow")
            assert cur.fetch_arrow_table().to_pylist() == [{"n": 3, "s": 6.0}]
        with conn.cursor() as cur:
            cur.execute("SELECT pump, flow FROM pyflow WHERE flow > $1 ORDER BY flow", parameters=(1.5,))
            assert cur.fetch_arrow_table().to_pylist() == [
                {"pump": "b", "flow": 2.0},
                {"pump": "a", "flow": 3.0},
            ]
        schema = conn.adbc_get_table_schema("pyflow", db_schema_filter="public")
        assert {"time", "pump", "flow"} <= set(schema.names)
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        catalogs = {o["catalog_name"] for o in objects}
        assert "ingot" in catalogs


def test_errors_and_auth():
    with pytest.raises(Exception):
        query("SELEC nonsense")
    with pytest.raises(Exception):
        with connect(token="wrong") as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    r = requests.post(f"http://{HTTP}/api/v2/write?bucket=py", data="m v=1 1", timeout=30)
    assert r.status_code == 401
    r = requests.get(f"http://{HTTP}/health", timeout=30)
    assert r.status_code == 200
