"""The floor for a folder transfer: boto3 alone, no bookkeeping (a benchmark helper run by folders.py).

    python benchmarks/boto3_folder.py push|pull LOCAL_DIR BUCKET PREFIX ENDPOINT [THREADS]

``push`` sends every file under LOCAL_DIR with one ``put_object`` each;
``pull`` lists PREFIX and writes every object with one ``get_object`` each;
both on THREADS threads (default 8, s3bp's default ``max_workers``) of one
client. No sync records, no snapshots, no checks beyond what botocore does
itself: what a Python tool built on boto3 costs at the least.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor


def main(argv: list[str]) -> int:
    op, local, bucket, prefix, endpoint = argv[:5]
    threads = int(argv[5]) if len(argv) > 5 else 8
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, config=Config(max_pool_connections=threads))
    if op == "push":
        files = [os.path.join(top, name) for top, _, names in os.walk(local) for name in names]

        def send(path: str) -> None:
            with open(path, "rb") as body:
                client.put_object(Bucket=bucket, Key=f"{prefix}/{os.path.relpath(path, local)}", Body=body)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(send, files))
        return 0
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", ())]

    def fetch(key: str) -> None:
        path = os.path.join(local, key[len(prefix) + 1 :])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with open(path, "wb") as out:
            for chunk in body.iter_chunks(1 << 20):
                out.write(chunk)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fetch, keys))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
