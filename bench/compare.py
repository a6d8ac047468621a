#!/usr/bin/env python3
"""Ingot against DuckDB, chDB (embedded ClickHouse) and DataFusion, side by side.

    bench/compare.sh --preset small                 # venv + deps + release build, then this
    bench/compare.sh --preset tiny --json run.json

`compare.sh` creates (or reuses) a venv at ~/.cache/ingot-bench-venv, installs
bench/requirements.txt into it (duckdb, chdb, datafusion, numpy, pyarrow), builds
`ingot-bench` with `cargo build --release -p ingot-bench` (CARGO_TARGET_DIR
defaults to ~/.cache/ingot-target) and runs this script with its arguments.
Run directly it needs those packages and the release binary:

    python3 bench/compare.py --preset small --runs 21 --batch-rows 10000 \\
        --threads 2 --peers duckdb,chdb,datafusion --json compare.json

On the same machine and in the same run it measures:

- Ingot: `ingot-bench ingest --target embedded --wal-sync always` (durable
  streaming ingest, write phase and write + final flush, bytes/point after the
  flush) and `ingot-bench query` (q1..q8, one cold run then --runs warm runs,
  median; results checked against bench/expected/PRESET by ingot-bench).
- DuckDB: a database file in a temporary directory, `SET threads = N`, the
  preset streamed as Arrow tables of --batch-rows rows, each one
  `INSERT INTO readings SELECT * FROM batch` in autocommit (one durable
  transaction per batch); then CHECKPOINT, bytes/point = file size / points.
- chDB: a persistent Session, MergeTree ORDER BY (device_id, time), each batch
  one INSERT with its Arrow IPC stream; bytes/point from system.parts once the
  inserts return, and again after OPTIMIZE TABLE FINAL (timed separately, not
  part of ingest). Default codecs (LZ4) and no fsync after inserts, as chDB
  ships; --chdb-codecs and --chdb-fsync change that.
- DataFusion: plain DataFusion on the generator's Parquet. The same batches
  written with pyarrow's pq.write_table, one file per 360 steps as gen.py does
  (default writer settings, Snappy; --datafusion-compression zstd), timed as a
  load: a file write without fsync, not a database insert, so it is printed
  below the table and not in the durable-ingest rows; bytes/point = Parquet
  bytes / points. Then a SessionContext with target_partitions = --threads and
  register_parquet("readings", dir).

--threads sets the peers' threads (DataFusion: target_partitions, its Tokio
runtime has one worker per core); ingot-bench's query runtime has 2 worker
threads of its own, and its ingest one writer. Peer timings exclude generating the data (batches are made before the timed
insert loop, --pregen-rows at a time); Ingot's include its own generator.
Points are non-null field values: rows x 7. Queries come from
bench/workload/queries.sql (DataFusion's dialect: DataFusion runs them as they
are), translated by expected.py (DuckDB) and to_clickhouse() below; each peer's
answer is checked against bench/expected/PRESET when it exists (else against
DuckDB's), and its row count against Ingot's; a disagreement is flagged in the
table.

Prints one table (Ingot, each peer, Ingot's advantage over each peer and over
the best one, and the goals: durable ingest >= 5x the best peer, <= 0.75
bytes/point, every query faster than the best peer); --json FILE writes
everything, cold runs included.
"""
import argparse
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import expected  # noqa: E402  (queries(), to_duckdb(), WORKLOAD)

WORKLOAD = os.path.normpath(expected.WORKLOAD)
QUERIES = os.path.join(WORKLOAD, "queries.sql")
sys.path.insert(0, WORKLOAD)

FIELDS = 7
TAGS = ["plant", "line", "device_id", "model"]
FLOAT_FIELDS = ["temperature", "pressure", "vibration", "power_kw", "voltage"]
INT_FIELDS = ["rpm", "status"]
GOAL_INGEST_RATIO = 5.0
GOAL_BYTES_PER_POINT = 0.75


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- workload


def preset_size(preset):
    import gen

    devices, steps = gen.PRESETS[preset]
    return devices, steps, devices * steps


def arrow_batches(preset, batch_rows):
    """The preset as Arrow tables of batch_rows rows (last one shorter), time-major,
    exactly as gen.py makes them."""
    import gen
    import pyarrow as pa

    devices, steps, _ = preset_size(preset)
    steps_per_block = max(1, max(batch_rows, 200_000) // devices)
    pending = None
    for k0 in range(0, steps, steps_per_block):
        k1 = min(steps, k0 + steps_per_block)
        t = gen.to_arrow(gen.block(devices, k0, k1, 10), devices)
        pending = t if pending is None else pa.concat_tables([pending, t])
        off = 0
        while pending.num_rows - off >= batch_rows:
            yield pending.slice(off, batch_rows).combine_chunks()
            off += batch_rows
        pending = pending.slice(off)
    if pending is not None and pending.num_rows:
        yield pending.combine_chunks()


def windows(preset, batch_rows, pregen_rows, prepare=lambda t: t):
    """Lists of prepared batches of at most pregen_rows rows in all, so that the
    timed insert loop runs on data already in memory."""
    window, rows = [], 0
    for t in arrow_batches(preset, batch_rows):
        window.append((t.num_rows, prepare(t)))
        rows += t.num_rows
        if rows >= pregen_rows:
            yield window
            window, rows = [], 0
    if window:
        yield window


# ---------------------------------------------------------------- results


def normalize(table):
    """Rows of plain Python values: timestamps as ns integers, integral decimals as ints."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        elif pa.types.is_date(col.type):
            col = pc.cast(col, pa.timestamp("ns")).cast(pa.int64())
        elif pa.types.is_decimal(col.type):
            col = col.cast(pa.int64()) if col.type.scale == 0 else col.cast(pa.float64())
        cols.append(col.to_pylist())
    return [list(r) for r in zip(*cols)]


def same_value(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        if math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-12
    return a == b


def compare_rows(got, want):
    """None when they agree, else a short description of the first difference."""
    if len(got) != len(want):
        return f"{len(got)} rows, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        if len(g) != len(w) or not all(same_value(x, y) for x, y in zip(g, w)):
            return f"row {i}: {g} != {w}"
    return None


def load_expected(preset):
    d = os.path.join(HERE, "expected", preset)
    if not os.path.isdir(d):
        return None
    out = {}
    for name, _ in expected.queries(QUERIES):
        f = os.path.join(d, f"{name}.jsonl")
        if os.path.exists(f):
            with open(f) as fh:
                out[name] = [json.loads(line) for line in fh if line.strip()]
    return out


def time_queries(run, queries, runs):
    """run(sql) -> Arrow table. One cold run, then `runs` warm runs, per query."""
    out = {}
    for name, sql in queries:
        t = time.perf_counter()
        table = run(sql)
        cold = (time.perf_counter() - t) * 1e3
        warm = []
        for _ in range(max(1, runs)):
            t = time.perf_counter()
            run(sql)
            warm.append((time.perf_counter() - t) * 1e3)
        warm.sort()
        out[name] = {
            "sql": sql,
            "rows": table.num_rows,
            "cold_ms": cold,
            "warm_ms": warm,
            "warm_median_ms": warm[len(warm) // 2],  # as ingot-bench computes it
            "result": normalize(table),
        }
        log(f"  {name}: {table.num_rows:>7} rows  cold {cold:9.1f} ms  warm median {out[name]['warm_median_ms']:9.1f} ms")
    return out


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


# ---------------------------------------------------------------- Ingot


def default_ingot_bench():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/ingot-target")
    return os.path.join(target, "release", "ingot-bench")


def run_ingot(a, tmp):
    repo = os.path.dirname(HERE)
    ingest_json = os.path.join(tmp, "ingot-ingest.json")
    query_json = os.path.join(tmp, "ingot-query.json")
    out = {"binary": a.ingot_bench}
    try:
        out["binary_mtime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(a.ingot_bench)))
    except OSError:
        pass
    cmd = [a.ingot_bench, "ingest", "--preset", a.preset, "--target", "embedded", "--clients", "1",
           "--batch-rows", str(a.batch_rows), "--wal-sync", "always", "--json", ingest_json]
    log("ingot: " + " ".join(cmd))
    r = subprocess.run(cmd, cwd=repo, stdout=sys.stderr)
    if r.returncode != 0:
        out["ingest_error"] = f"ingot-bench ingest exited {r.returncode}"
    else:
        with open(ingest_json) as f:
            ing = json.load(f)
        ing["write_flush_points_per_second"] = ing["points"] / (ing["write_seconds"] + ing["flush_seconds"])
        out["ingest"] = ing
    cmd = [a.ingot_bench, "query", "--preset", a.preset, "--runs", str(a.runs), "--queries", QUERIES,
           "--json", query_json]
    log("ingot: " + " ".join(cmd))
    r = subprocess.run(cmd, cwd=repo, stdout=sys.stderr)
    if r.returncode != 0:
        out["query_error"] = f"ingot-bench query exited {r.returncode} (a result that disagrees with bench/expected fails it)"
    else:
        with open(query_json) as f:
            out["queries"] = {q["name"]: q for q in json.load(f)}
    return out


# ---------------------------------------------------------------- DuckDB


def duckdb_ddl():
    cols = ["time TIMESTAMPTZ"] + [f"{t} VARCHAR" for t in TAGS]
    cols += [f"{f} DOUBLE" for f in FLOAT_FIELDS] + [f"{f} BIGINT" for f in INT_FIELDS]
    return f"CREATE TABLE readings ({', '.join(cols)})"


def run_duckdb(a, tmp, queries):
    import duckdb

    path = os.path.join(tmp, "duckdb", "readings.duckdb")
    os.makedirs(os.path.dirname(path))

    def connect():
        con = duckdb.connect(path)
        con.execute(f"SET threads = {a.threads}")
        con.execute("SET TimeZone = 'UTC'")
        return con

    con = connect()
    con.execute(duckdb_ddl())
    rows = 0
    insert_s = 0.0
    log(f"duckdb {duckdb.__version__}: ingest")
    for window in windows(a.preset, a.batch_rows, a.pregen_rows):
        t = time.perf_counter()
        for n, batch in window:  # noqa: B007  (batch is read by DuckDB's replacement scan)
            con.execute("INSERT INTO readings SELECT * FROM batch")
        insert_s += time.perf_counter() - t
        rows += sum(n for n, _ in window)
        log(f"  {rows} rows, {rows * FIELDS / insert_s / 1e6:.2f} M points/s")
    t = time.perf_counter()
    con.execute("CHECKPOINT")
    checkpoint_s = time.perf_counter() - t
    count = con.execute("SELECT count(*) FROM readings").fetchone()[0]
    con.close()
    files = [path, path + ".wal"]
    bytes_on_disk = sum(os.path.getsize(f) for f in files if os.path.exists(f))
    points = rows * FIELDS
    ingest = {
        "rows": rows,
        "rows_in_table": count,
        "points": points,
        "write_seconds": insert_s,
        "points_per_second": points / insert_s,
        "flush_seconds": checkpoint_s,
        "write_flush_points_per_second": points / (insert_s + checkpoint_s),
        "bytes_on_disk": bytes_on_disk,
        "bytes_per_point": bytes_on_disk / points,
        "method": "INSERT INTO readings SELECT * FROM <pyarrow.Table> (autocommit, one transaction per batch); "
                  "flush = CHECKPOINT",
    }
    log(f"  CHECKPOINT {checkpoint_s:.2f} s, {bytes_on_disk} bytes, {ingest['bytes_per_point']:.3f} bytes/point")

    con = connect()  # fresh connection: the first run of each query is cold for DuckDB's buffers
    translated = [(name, expected.to_duckdb(sql)) for name, sql in queries]
    log("duckdb: queries")
    q = time_queries(lambda sql: con.sql(sql).to_arrow_table(), translated, a.runs)
    con.close()
    return {"version": duckdb.__version__, "threads": a.threads, "ingest": ingest, "queries": q}


# ---------------------------------------------------------------- chDB


def to_clickhouse(sql):
    """DataFusion's dialect of queries.sql -> ClickHouse."""
    sql = re.sub(
        r"date_bin\(INTERVAL '(\d+) ([a-z]+?)s?', (\w+)\)",
        # toStartOfInterval returns a DateTime (seconds): back to the column's type
        lambda m: f"toDateTime64(toStartOfInterval({m[3]}, INTERVAL {m[1]} {m[2].upper()}), 9, 'UTC')",
        sql,
    )
    sql = re.sub(r"last_value\((\w+) ORDER BY (\w+)\)", r"argMax(\1, \2)", sql)
    sql = re.sub(
        r"'(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d(?:\.\d+)?)Z'",
        r"toDateTime64('\1 \2', 9, 'UTC')",
        sql,
    )
    return sql


def chdb_ddl(codecs, fsync):
    c = {
        "time": "DateTime64(9, 'UTC')",
        **{t: "LowCardinality(String)" for t in TAGS},
        **{f: "Float64" for f in FLOAT_FIELDS},
        **{f: "Int64" for f in INT_FIELDS},
    }
    if codecs:  # ClickHouse's usual time-series codecs
        c["time"] += " CODEC(DoubleDelta, ZSTD(1))"
        for f in FLOAT_FIELDS:
            c[f] += " CODEC(ZSTD(1))"
        for f in INT_FIELDS:
            c[f] += " CODEC(T64, ZSTD(1))"
    cols = ", ".join(f"{k} {v}" for k, v in c.items())
    settings = " SETTINGS fsync_after_insert = 1" if fsync else ""  # a MergeTree setting: every part fsynced
    return f"CREATE TABLE readings ({cols}) ENGINE = MergeTree ORDER BY (device_id, time){settings}"


def run_chdb(a, tmp, queries):
    import chdb
    import pyarrow as pa
    from chdb.session import Session

    path = os.path.join(tmp, "chdb")
    sess = Session(path)
    sess.query(chdb_ddl(a.chdb_codecs, a.chdb_fsync))
    use_stream = hasattr(sess, "send_insert")

    def ipc(t):
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        return sink.getvalue()

    def parts_bytes():
        r = sess.query(
            "SELECT sum(bytes_on_disk), count() FROM system.parts "
            "WHERE database = currentDatabase() AND table = 'readings' AND active",
            "ArrowTable",
        )
        b, n = r.column(0)[0].as_py(), r.column(1)[0].as_py()
        return int(b or 0), int(n)

    rows = 0
    insert_s = 0.0
    log(f"chdb {chdb.__version__} (ClickHouse {getattr(chdb, 'engine_version', '?')}): ingest")
    for window in windows(a.preset, a.batch_rows, a.pregen_rows, ipc if use_stream else (lambda t: t)):
        t = time.perf_counter()
        for n, batch in window:  # noqa: B007  (batch is read by the Python() table function)
            if use_stream:
                with sess.send_insert("INSERT INTO readings", "ArrowStream") as ins:
                    ins.append(batch)
                    ins.finish()
            else:
                sess.query("INSERT INTO readings SELECT * FROM Python(batch)")
        insert_s += time.perf_counter() - t
        rows += sum(n for n, _ in window)
        log(f"  {rows} rows, {rows * FIELDS / insert_s / 1e6:.2f} M points/s")
    points = rows * FIELDS
    b_after, parts_after = parts_bytes()
    t = time.perf_counter()
    sess.query("OPTIMIZE TABLE readings FINAL")
    optimize_s = time.perf_counter() - t
    b_opt, parts_opt = parts_bytes()
    count = int(sess.query("SELECT count() FROM readings", "ArrowTable").column(0)[0].as_py())
    ingest = {
        "rows": rows,
        "rows_in_table": count,
        "points": points,
        "write_seconds": insert_s,
        "points_per_second": points / insert_s,
        "flush_seconds": 0.0,
        "write_flush_points_per_second": points / insert_s,
        "bytes_on_disk": b_after,
        "bytes_per_point": b_after / points,
        "active_parts": parts_after,
        "optimize_seconds": optimize_s,
        "bytes_on_disk_optimized": b_opt,
        "bytes_per_point_optimized": b_opt / points,
        "active_parts_optimized": parts_opt,
        "codecs": "time DoubleDelta, ints T64, all + ZSTD(1)" if a.chdb_codecs else "default (LZ4)",
        "fsync_after_insert": bool(a.chdb_fsync),
        "method": ("send_insert('INSERT INTO readings', 'ArrowStream') per batch" if use_stream
                   else "INSERT INTO readings SELECT * FROM Python(<pyarrow.Table>) per batch"),
    }
    log(f"  {b_after} bytes in {parts_after} parts after the inserts ({ingest['bytes_per_point']:.3f} bytes/point); "
        f"OPTIMIZE FINAL {optimize_s:.2f} s -> {ingest['bytes_per_point_optimized']:.3f}")
    sess.close()

    sess = Session(path)  # reopen: the first run of each query starts without this process's caches
    settings = f" SETTINGS max_threads = {a.threads}, prefer_column_name_to_alias = 1"
    translated = [(name, to_clickhouse(sql) + settings) for name, sql in queries]
    log("chdb: queries")
    q = time_queries(lambda sql: sess.query(sql, "ArrowTable"), translated, a.runs)
    sess.close()
    return {
        "version": chdb.__version__,
        "engine_version": getattr(chdb, "engine_version", None),
        "threads": a.threads,
        "ingest": ingest,
        "queries": q,
    }


# ---------------------------------------------------------------- DataFusion


def run_datafusion(a, tmp, queries):
    """Plain DataFusion on the generator's Parquet: the preset written with pyarrow's
    pq.write_table, one file per 360 steps as gen.py writes it (default writer
    settings: format 2.6, dictionary encoding, row groups of up to 1 Mi rows, Snappy
    unless --datafusion-compression zstd), then queried through a SessionContext.

    The load is a file write, not a database insert: no transaction, no fsync, so it
    is reported as load time (load_seconds, load_points_per_second) and left out of
    the durable-ingest rows; bytes/point = Parquet bytes / points. `time` is
    timestamp[ns, tz=UTC] in the Parquet (TIMESTAMP(NANOS, UTC)), which DataFusion
    reads as Timestamp(ns, UTC) and compares with the queries' RFC 3339 literals.
    queries.sql is in DataFusion's dialect: the queries run untranslated."""
    import datafusion
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datafusion import SessionConfig, SessionContext

    path = os.path.join(tmp, "datafusion")
    os.makedirs(path)
    devices, _, _ = preset_size(a.preset)
    rows_per_file = devices * 360  # gen.py --steps-per-file's default
    files = []
    pending, pending_rows = [], 0

    def write_file():
        nonlocal pending, pending_rows
        table = pa.concat_tables(pending)
        head, rest = table.slice(0, rows_per_file), table.slice(rows_per_file)
        f = os.path.join(path, f"part-{len(files):05d}.parquet")
        pq.write_table(head, f, compression=a.datafusion_compression)
        files.append(f)
        pending, pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    rows = 0
    load_s = 0.0
    log(f"datafusion {datafusion.__version__}: Parquet load ({a.datafusion_compression})")
    for window in windows(a.preset, a.batch_rows, a.pregen_rows):
        t = time.perf_counter()
        for n, batch in window:
            pending.append(batch)
            pending_rows += n
            while pending_rows >= rows_per_file:
                write_file()
        load_s += time.perf_counter() - t
        rows += sum(n for n, _ in window)
        log(f"  {rows} rows, {rows * FIELDS / load_s / 1e6:.2f} M points/s")
    t = time.perf_counter()
    if pending_rows:
        write_file()
    load_s += time.perf_counter() - t
    bytes_on_disk = sum(os.path.getsize(f) for f in files)
    points = rows * FIELDS

    def context():
        ctx = SessionContext(SessionConfig().with_target_partitions(a.threads))
        ctx.register_parquet("readings", path)
        return ctx

    count = context().sql("SELECT count(*) FROM readings").to_arrow_table().column(0)[0].as_py()
    ingest = {
        "rows": rows,
        "rows_in_table": count,
        "points": points,
        "load_seconds": load_s,
        "load_points_per_second": points / load_s,
        "files": len(files),
        "bytes_on_disk": bytes_on_disk,
        "bytes_per_point": bytes_on_disk / points,
        "compression": a.datafusion_compression,
        "durable": False,
        "method": f"pyarrow.parquet.write_table per {rows_per_file} rows ({a.datafusion_compression}, no fsync): "
                  "a file write, not a database insert",
    }
    log(f"  {len(files)} files, {bytes_on_disk} bytes, {ingest['bytes_per_point']:.3f} bytes/point")

    ctx = context()  # fresh context: the first run of each query starts without the count's caches
    log("datafusion: queries")
    q = time_queries(lambda sql: ctx.sql(sql).to_arrow_table(), queries, a.runs)
    return {"version": datafusion.__version__, "threads": a.threads, "target_partitions": a.threads,
            "ingest": ingest, "queries": q}


# ---------------------------------------------------------------- report


def machine(peers):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    m = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "memory_bytes": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }
    try:
        m["ingot_commit"] = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                           capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    if "duckdb" in peers:
        import duckdb

        m["duckdb"] = duckdb.__version__
    if "chdb" in peers:
        import chdb

        m["chdb"] = f"{chdb.__version__} (ClickHouse {getattr(chdb, 'engine_version', '?')})"
    if "datafusion" in peers:
        import datafusion

        m["datafusion"] = datafusion.__version__
    return m


def fmt_rate(v):
    return "-" if v is None else f"{v / 1e6:.2f} M"


def fmt_bpp(v):
    return "-" if v is None else f"{v:.3f}"


def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def advantage(ingot, peer, higher_is_better):
    """How many times better Ingot is than the peer (> 1: Ingot better)."""
    if ingot is None or peer is None or ingot <= 0 or peer <= 0:
        return None
    return ingot / peer if higher_is_better else peer / ingot


def words(r, better, worse):
    if r is None:
        return "-"
    if r >= 1:
        return f"{r:.1f}x {better}"
    return f"{r:.2f}x ({worse})" if r < 0.995 else f"{r:.3f}x ({worse})"


def build_rows(res, peers):
    ingot = res.get("ingot") or {}
    ing = ingot.get("ingest") or {}
    iq = ingot.get("queries") or {}
    rows = []

    def row(label, key, ingot_v, peer_vs, kind, goal=None):
        hib = kind == "rate"
        ratios = {p: advantage(ingot_v, v, hib) for p, v in peer_vs.items()}
        known = [v for v in peer_vs.values() if v is not None]
        best = (max(known) if hib else min(known)) if known else None
        best_peer = next((p for p, v in peer_vs.items() if v is not None and v == best), None)
        r = advantage(ingot_v, best, hib)
        rows.append({"metric": label, "key": key, "kind": kind, "ingot": ingot_v, "peers": peer_vs,
                     "advantage": ratios, "best_peer": best_peer, "advantage_over_best": r, "goal": goal})
        return r

    def peer_ingest(field):
        return {p: (res["peers"].get(p) or {}).get("ingest", {}).get(field) for p in peers}

    r = row("ingest points/s, durable", "points_per_second", ing.get("points_per_second"),
            peer_ingest("points_per_second"), "rate")
    rows[-1]["goal"] = {"text": f">= {GOAL_INGEST_RATIO:g}x best", "met": None if r is None else r >= GOAL_INGEST_RATIO}
    row("ingest points/s, + flush", "write_flush_points_per_second", ing.get("write_flush_points_per_second"),
        peer_ingest("write_flush_points_per_second"), "rate")
    v = ing.get("bytes_per_point")
    row("bytes/point on disk", "bytes_per_point", v, peer_ingest("bytes_per_point"), "bytes")
    rows[-1]["goal"] = {"text": f"<= {GOAL_BYTES_PER_POINT}", "met": None if v is None else v <= GOAL_BYTES_PER_POINT}
    if "chdb" in peers:
        row("bytes/point, chDB merged", "bytes_per_point_optimized", v,
            {p: (peer_ingest("bytes_per_point_optimized")[p] if p == "chdb" else None) for p in peers}, "bytes")
    names = [n for n, _ in expected.queries(QUERIES)]
    for n in names:
        iv = (iq.get(n) or {}).get("warm_median_ms")
        pv = {p: ((res["peers"].get(p) or {}).get("queries", {}).get(n) or {}).get("warm_median_ms") for p in peers}
        r = row(f"{n} warm median, ms", n, iv, pv, "ms")
        rows[-1]["goal"] = {"text": "faster than best", "met": None if r is None else r > 1}
    return rows


def check_results(res, peers, expected_rows):
    """Flags: {(peer, query): message}. Each peer against bench/expected (or DuckDB), and
    its row count against Ingot's."""
    flags = {}
    iq = (res.get("ingot") or {}).get("queries") or {}
    for p in peers:
        pq = (res["peers"].get(p) or {}).get("queries") or {}
        for n, q in pq.items():
            msgs = []
            if expected_rows is not None and n in expected_rows:
                d = compare_rows(q["result"], expected_rows[n])
                q["checked_against"] = "bench/expected"
                if d:
                    msgs.append(f"differs from bench/expected: {d}")
            elif p != "duckdb" and "duckdb" in res["peers"] and n in res["peers"]["duckdb"].get("queries", {}):
                d = compare_rows(q["result"], res["peers"]["duckdb"]["queries"][n]["result"])
                q["checked_against"] = "duckdb"
                if d:
                    msgs.append(f"differs from DuckDB: {d}")
            if n in iq and iq[n]["rows"] != q["rows"]:
                msgs.append(f"{q['rows']} rows, Ingot {iq[n]['rows']}")
            q["agrees"] = not msgs
            if msgs:
                flags[(p, n)] = "; ".join(msgs)
    for n, q in iq.items():
        if not q.get("checked"):
            flags[("ingot", n)] = "not checked by ingot-bench (no bench/expected for this preset)"
    for p in peers:
        ing = (res["peers"].get(p) or {}).get("ingest") or {}
        if ing and ing.get("rows_in_table") != ing.get("rows"):
            flags[(p, "ingest")] = f"table holds {ing.get('rows_in_table')} rows, {ing.get('rows')} inserted"
    return flags


def render(res, peers, rows, flags):
    a = res["args"]
    m = res["machine"]
    devices, steps, nrows = preset_size(a["preset"])
    out = []
    out.append(f"Ingot vs {', '.join(peers) or 'no peers'}: preset {a['preset']} ({nrows:,} rows, "
               f"{nrows * FIELDS:,} points), batches of {a['batch_rows']:,} rows, peers on {a['threads']} threads, "
               f"{a['runs']} warm runs")
    out.append(f"machine: {m['nproc']} cores, {m['cpu']}, {(m.get('memory_bytes') or 0) / 2**30:.0f} GiB, "
               f"Linux {m['kernel']}, load average at start {m['loadavg_at_start'][0]:.2f}; Ingot {m.get('ingot_commit', '?')}"
               + "".join(f", {p} {m[p]}" for p in peers if p in m))
    names = {"duckdb": "DuckDB", "chdb": "chDB", "datafusion": "DataFusion"}
    header = ["", "Ingot"] + [names[p] for p in peers] + [f"vs {names[p]}" for p in peers] + ["Ingot vs best peer", "goal"]
    table = [header]
    fmt = {"rate": fmt_rate, "bytes": fmt_bpp, "ms": fmt_ms}
    for r in rows:
        f = fmt[r["kind"]]
        cells = [r["metric"], f(r["ingot"])]
        for p in peers:
            c = f(r["peers"][p])
            if (p, r["key"]) in flags:
                c += " !"
            cells.append(c)
        for p in peers:
            x = r["advantage"][p]
            cells.append("-" if x is None else f"{x:.2f}x")
        better, worse = {"rate": ("faster", "slower"), "bytes": ("smaller", "larger"), "ms": ("faster", "slower")}[r["kind"]]
        cells.append(words(r["advantage_over_best"], better, worse))
        g = r.get("goal")
        cells.append("" if not g else f"{g['text']}: " + {True: "met", False: "MISSED", None: "?"}[g["met"]])
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        out.append("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(row)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("vs X: how many times better Ingot is than X (> 1: Ingot faster / smaller). "
               "Peer ingest excludes data generation; Ingot's includes its generator.")
    ing = (res.get("ingot") or {}).get("ingest")
    if ing:
        out.append(f"Ingot ingest: write phase {ing['write_seconds']:.2f} s (WAL fsync per batch), "
                   f"final flush {ing['flush_seconds']:.2f} s, {ing['files']} files, peak RSS "
                   f"{ing['peak_rss_bytes'] / 2**20:.0f} MiB.")
    d = (res["peers"].get("duckdb") or {}).get("ingest")
    if d:
        out.append(f"DuckDB ingest: inserts {d['write_seconds']:.2f} s, CHECKPOINT {d['flush_seconds']:.2f} s, "
                   f"file {d['bytes_on_disk']:,} bytes.")
    c = (res["peers"].get("chdb") or {}).get("ingest")
    if c:
        out.append(f"chDB ingest: inserts {c['write_seconds']:.2f} s ({c['active_parts']} active parts after), codecs "
                   f"{c['codecs']}, fsync_after_insert={int(c['fsync_after_insert'])}; OPTIMIZE FINAL "
                   f"{c['optimize_seconds']:.2f} s (not in ingest) -> {c['bytes_per_point_optimized']:.3f} bytes/point.")
    d = (res["peers"].get("datafusion") or {}).get("ingest")
    if d:
        out.append(f"DataFusion load (not in ingest): {d['files']} Parquet file(s) ({d['compression']}, no fsync) "
                   f"written in {d['load_seconds']:.2f} s, {fmt_rate(d['load_points_per_second'])} points/s, "
                   f"{d['bytes_on_disk']:,} bytes; a file write, not a database insert.")
    for key in ("ingest_error", "query_error"):
        if (res.get("ingot") or {}).get(key):
            out.append(f"INGOT ERROR: {res['ingot'][key]}")
    for p, e in res.get("errors", {}).items():
        out.append(f"{p.upper()} ERROR: {e}")
    if flags:
        out.append("Disagreements (marked !) and notes:")
        for (p, n), msg in sorted(flags.items()):
            out.append(f"  {p} {n}: {msg}")
    elif not res["errors"]:
        checked = "bench/expected" if res.get("expected") else "DuckDB"
        iq = (res.get("ingot") or {}).get("queries")
        out.append(f"Every peer answer agrees with {checked} (floats to 1e-9 relative)"
                   + ("; row counts agree with Ingot's, whose answers ingot-bench checked against bench/expected."
                      if iq else "."))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small", choices=["tiny", "small", "medium", "billion"])
    # Queries of a few milliseconds vary by a third from run to run on a
    # shared 2-core machine, and the first warm runs are the slowest: the
    # median of 21 is steady where that of 5 is not.
    ap.add_argument("--runs", type=int, default=21, help="warm runs per query (median reported)")
    ap.add_argument("--batch-rows", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2,
                    help="DuckDB threads / chDB max_threads / DataFusion target_partitions")
    ap.add_argument("--ingot-bench", default=default_ingot_bench(),
                    help="the release ingot-bench binary (default $CARGO_TARGET_DIR or ~/.cache/ingot-target, "
                         "+ /release/ingot-bench)")
    ap.add_argument("--peers", default="duckdb,chdb,datafusion",
                    help="comma-separated: duckdb, chdb, datafusion (or none)")
    ap.add_argument("--skip-ingot", action="store_true", help="run only the peers (for debugging)")
    ap.add_argument("--json", help="write every figure, cold runs and peer results included, to this file")
    ap.add_argument("--pregen-rows", type=int, default=10_000_000,
                    help="peer batches generated ahead of each timed insert loop (memory vs gaps)")
    ap.add_argument("--chdb-codecs", action="store_true",
                    help="chDB columns with DoubleDelta (time), T64 (ints) and ZSTD(1) codecs instead of the default LZ4")
    ap.add_argument("--chdb-fsync", action="store_true", help="chDB table with fsync_after_insert = 1 (each inserted part fsynced)")
    ap.add_argument("--datafusion-compression", default="snappy", choices=["snappy", "zstd"],
                    help="compression of DataFusion's Parquet files (default pyarrow's and the generator's, Snappy)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory with the peers' databases")
    a = ap.parse_args()
    peers = [p for p in a.peers.split(",") if p and p != "none"]
    for p in peers:
        if p not in ("duckdb", "chdb", "datafusion"):
            ap.error(f"unknown peer {p!r}: expected duckdb, chdb, datafusion")

    if not a.skip_ingot and not os.path.exists(a.ingot_bench):
        target = os.path.dirname(os.path.dirname(a.ingot_bench))
        sys.exit(f"compare.py: {a.ingot_bench} does not exist; build it with\n"
                 f"    cd {os.path.dirname(HERE)} && CARGO_TARGET_DIR={target} cargo build --release -p ingot-bench\n"
                 f"or run bench/compare.sh, which builds it.")
    missing = [m for m in ["numpy", "pyarrow"] + peers if not _importable(m)]
    if missing:
        sys.exit(f"compare.py: missing Python packages {', '.join(missing)}: run bench/compare.sh, or "
                 f"pip install -r {os.path.join(HERE, 'requirements.txt')}")

    queries = expected.queries(QUERIES)
    res = {"args": vars(a), "machine": machine(peers), "peers": {}, "errors": {}}
    res["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tmp = tempfile.mkdtemp(prefix="ingot-compare-")
    try:
        if not a.skip_ingot:
            res["ingot"] = run_ingot(a, tmp)
        for p in peers:
            try:
                run = {"duckdb": run_duckdb, "chdb": run_chdb, "datafusion": run_datafusion}[p]
                res["peers"][p] = run(a, tmp, queries)
            except Exception as e:  # report the others
                import traceback

                traceback.print_exc()
                res["errors"][p] = f"{type(e).__name__}: {e}"
    finally:
        if a.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    expected_rows = load_expected(a.preset)
    res["expected"] = expected_rows is not None
    flags = check_results(res, peers, expected_rows)
    rows = build_rows(res, peers)
    res["table"] = rows
    res["disagreements"] = [{"system": p, "what": n, "message": m} for (p, n), m in sorted(flags.items())]
    for p in res["peers"].values():  # the answers were checked above: keep their first rows only
        for q in p.get("queries", {}).values():
            q["result_head"] = q.pop("result")[:5]
    text = render(res, peers, rows, flags)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
        log(f"wrote {a.json}")
    bad_peer = any(p != "ingot" for p, _ in flags)
    return 1 if (res["errors"] or bad_peer or any(k in (res.get("ingot") or {}) for k in ("ingest_error", "query_error"))) else 0


def _importable(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    sys.exit(main())
