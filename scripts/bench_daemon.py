#!/usr/bin/env python3
"""Measures jetrtd on this machine (a benchmark, not a test; not run in CI).

    python3 scripts/bench_daemon.py [--model DIR] [--minutes 10] [--bin-dir target/release]

With a model folder holding model.onnx (default: $JETRT_MODELS/squeezenet1_1,
else ../shared/models/squeezenet1_1), it prints:

1. sustained FPS of a jetrtd pipeline on a synthetic 320x240 source faster
   than the engine (frames the pipeline cannot take are dropped), with a
   subscriber reading every result over the socket;
2. the baseline: `engine-builder bench` on the engine jetrtd built (bare
   inference at batch 1, same thread count), right after;
3. capture-to-publish latency p50/p99 with the source at half the
   sustained rate (no queueing), and the daemon's overhead over the engine;
4. jetrtd's RSS after 1 minute and after --minutes minutes of a saturated
   run (the two should be within 5%); --minutes 0 skips it.

Binaries come from --bin-dir (build them first: cargo build --release
--bins). Timings depend on what else runs: run it on a quiet machine.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from jetrt_client import Client  # noqa: E402

IMAGENET = "mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\ninput_size = [224, 224]\n"


def config(dirpath, model, threads, fps):
    return """version = 1
[daemon]
socket = "{d}/jetrtd.sock"
state_dir = "{d}/state"
log_level = "warn"

[engines.net]
onnx = "{model}"
threads = {threads}
{imagenet}
[sources.pattern]
kind = "synthetic"
width = 320
height = 240
fps = {fps}
queue = 1

[pipelines.net]
source = "pattern"
engine = "net"
postprocess = {{ kind = "topk", top = 5, probs = false }}
""".format(d=dirpath, model=model, threads=threads, fps=fps, imagenet=IMAGENET)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Daemon:
    def __init__(self, bin_dir, dirpath, text):
        self.dir = dirpath
        path = os.path.join(dirpath, "jetrtd.toml")
        with open(path, "w") as f:
            f.write(text)
        self.log = open(os.path.join(dirpath, "jetrtd.log"), "w")
        self.proc = subprocess.Popen([os.path.join(bin_dir, "jetrtd"), "--config", path],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        sock = os.path.join(dirpath, "jetrtd.sock")
        for _ in range(6000):
            if self.proc.poll() is not None:
                sys.exit("jetrtd exited: see %s" % self.log.name)
            try:
                self.client = Client(sock, timeout=10.0, name="bench")
                return
            except Exception:
                time.sleep(0.05)
        sys.exit("jetrtd did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def reader(sock, stop, counts):
    """Reads every result, as a robot's client would."""
    c = Client(sock, timeout=10.0, name="bench-reader")
    c.subscribe("net")
    while not stop.is_set():
        r = c.next_result(timeout=1.0)
        if r is not None:
            counts[0] += 1
    c.close()


def pipeline_stats(c):
    return c.stats()["pipelines"]["net"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_models = os.environ.get("JETRT_MODELS", os.path.join(ROOT, "..", "shared", "models"))
    ap.add_argument("--model", default=os.path.join(default_models, "squeezenet1_1"))
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--window", type=float, default=20.0, help="seconds per FPS/latency measurement")
    ap.add_argument("--source-fps", type=float, default=120.0,
                    help="synthetic source rate of the saturated run (above the engine's; rendering frames costs CPU too)")
    a = ap.parse_args()
    model = os.path.abspath(os.path.join(a.model, "model.onnx"))
    if not os.path.exists(model):
        sys.exit("no model at %s (set --model or JETRT_MODELS)" % model)
    print("machine: %s, %d cores; load average %s" % (
        os.uname().machine, os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg())))
    print("model: %s; threads %d" % (model, a.threads))

    def run_daemon(tmp, fps):
        d = Daemon(a.bin_dir, tmp, config(tmp, model, a.threads, fps))
        stop = threading.Event()
        counts = [0]
        t = threading.Thread(target=reader, args=(os.path.join(tmp, "jetrtd.sock"), stop, counts))
        t.start()
        return d, stop, counts, t

    # 1. Sustained rate: the source is faster than the engine. Then the
    # baseline and the latency run, close in time so they compare.
    with tempfile.TemporaryDirectory() as tmp:
        d, stop, counts, t = run_daemon(tmp, a.source_fps)
        time.sleep(3)
        s0, c0, t0 = pipeline_stats(d.client), counts[0], time.monotonic()
        time.sleep(a.window)
        s1, c1, t1 = pipeline_stats(d.client), counts[0], time.monotonic()
        stop.set()
        t.join()
        d.stop()
        fps = (s1["frames"] - s0["frames"]) / (t1 - t0)
        client_fps = (c1 - c0) / (t1 - t0)
        print("\nsustained (source %.0f fps, queue 1): %.1f fps in the pipeline, %.1f results/s read by a client; "
              "engine p50 %.2f ms; capture->publish p50 %.2f p99 %.2f ms" % (
                  a.source_fps, fps, client_fps, s1["engine_ms"]["p50"], s1["latency_ms"]["p50"],
                  s1["latency_ms"]["p99"]))
        sys.stdout.flush()

        # 2. Baseline: bare inference on the engine the daemon built.
        edir = os.path.join(tmp, "state", "engines")
        engine = os.path.join(edir, os.listdir(edir)[0])
        out = subprocess.run([os.path.join(a.bin_dir, "engine-builder"), "bench", engine,
                              "--threads", str(a.threads)], capture_output=True, text=True)
        print("\nbaseline, engine-builder bench --threads %d:\n%s" % (a.threads, out.stdout.strip()))
        m = re.search(r"median\s+([0-9.]+)\s*ms", out.stdout)
        bench_ms = float(m.group(1)) if m else None
        m = re.search(r"fps\s+([0-9.]+)", out.stdout)
        bench_fps = float(m.group(1)) if m else None
        sys.stdout.flush()

    # 3. Latency without queueing: the source at half the sustained rate.
    with tempfile.TemporaryDirectory() as tmp:
        d, stop, counts, t = run_daemon(tmp, round(max(1.0, fps / 2), 1))
        time.sleep(3 + a.window)
        s = pipeline_stats(d.client)
        stop.set()
        t.join()
        d.stop()
        over = s["latency_ms"]["p50"] - s["engine_ms"]["p50"]
        print("\nat %.1f fps (half the sustained rate): capture->publish p50 %.2f ms, p99 %.2f ms; engine p50 %.2f ms; "
              "daemon overhead (p50 latency - p50 engine: conversion, resize, normalization, postprocess, publish) %.2f ms" % (
                  s["fps"], s["latency_ms"]["p50"], s["latency_ms"]["p99"], s["engine_ms"]["p50"], over))
        if bench_ms:
            print("engine time in the daemon vs engine-builder bench median: %.2f vs %.2f ms; "
                  "sustained daemon fps vs bench fps: %.1f vs %.1f" % (
                      s["engine_ms"]["p50"], bench_ms, fps, bench_fps or 0.0))
        sys.stdout.flush()

    # 4. Soak: RSS after 1 minute and at the end, saturated, a client reading.
    rss1 = rssn = 0
    if a.minutes > 0:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.monotonic()
            d, stop, counts, t = run_daemon(tmp, a.source_fps)
            while time.monotonic() - start < 60:
                time.sleep(1)
            rss1 = rss_kib(d.proc.pid)
            print("\nRSS after 1 min: %.1f MiB" % (rss1 / 1024))
            sys.stdout.flush()
            while time.monotonic() - start < a.minutes * 60:
                time.sleep(5)
            rssn = rss_kib(d.proc.pid)
            frames = pipeline_stats(d.client)["frames"]
            print("RSS after %.0f min: %.1f MiB (%+.1f%% from 1 min); %d frames processed, %d read by the client" % (
                a.minutes, rssn / 1024, 100.0 * (rssn - rss1) / max(rss1, 1), frames, counts[0]))
            stop.set()
            t.join()
            d.stop()
    print("load average at the end: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    print(json.dumps({"sustained_fps": fps, "client_fps": client_fps, "rss_1min_kib": rss1,
                      "rss_end_kib": rssn, "latency_p50_ms": s["latency_ms"]["p50"],
                      "latency_p99_ms": s["latency_ms"]["p99"], "engine_p50_ms": s["engine_ms"]["p50"],
                      "bench_median_ms": bench_ms}))


if __name__ == "__main__":
    main()
