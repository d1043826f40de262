#!/usr/bin/env python3
"""Driven by the daemon's end-to-end tests (daemon/tests/e2e.rs): talks to a
running jetrtd through jetrt_client and prints one JSON object per line for
the test to check.

    e2e_client.py SOCKET PIPELINE COUNT RGB_FILE WIDTH HEIGHT
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from jetrt_client import Client, DaemonError  # noqa: E402


def out(kind, **kw):
    print(json.dumps(dict(kw, kind=kind)), flush=True)


def main():
    sock, pipeline, count, rgb_file, w, h = sys.argv[1:7]
    count, w, h = int(count), int(w), int(h)
    c = Client(sock, timeout=10.0, name="e2e")
    out("hello", server=c.server)
    out("list", pipelines=[p["name"] for p in c.list()["pipelines"]])
    c.subscribe(pipeline)
    got = 0
    while got < count:
        r = c.next_result(timeout=10.0)
        if r is None:
            out("error", message="no result within 10 s")
            sys.exit(1)
        got += 1
        out("result", pipeline=r.pipeline, seq=r.seq, age=r.age, output=r.output)
    c.unsubscribe(pipeline)
    with open(rgb_file, "rb") as f:
        pixels = f.read()
    r = c.infer(pipeline, pixels, w, h, "rgb")
    out("infer", output=r.output, latency_ms=r.latency_ms)
    try:
        c.infer(pipeline, pixels[:-1], w, h, "rgb")
        out("error", message="a short image was accepted")
        sys.exit(1)
    except DaemonError as e:
        out("refused", code=e.code)
    # A lost connection: the next request reconnects and renews subscriptions.
    c.close()
    stats = c.stats()
    out("stats", frames=stats["pipelines"][pipeline]["frames"])
    c.close()


if __name__ == "__main__":
    main()
