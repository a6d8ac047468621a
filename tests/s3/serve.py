"""An S3-compatible server on 127.0.0.1 for Ingot's tests and benchmarks.

Usage: serve.py PORT BUCKET...

Starts moto's server on 127.0.0.1:PORT, creates the buckets, prints
"ready" and serves until its standard input closes, so that it ends with the
process that started it (a test, a benchmark), however that one ends.
"""

import logging
import sys

import boto3
from moto.server import ThreadedMotoServer


def main():
    port = int(sys.argv[1])
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="ingot",
        aws_secret_access_key="ingot-secret",
    )
    for bucket in sys.argv[2:]:
        s3.create_bucket(Bucket=bucket)
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
