#!/usr/bin/env python3
"""Measures jetrtd on a GPU (a benchmark, not a test; not run in CI).

    python3 scripts/bench_daemon_gpu.py --bin-dir DIR --model resnet18/model.onnx

For 1, 2 and 4 pipelines (--pipelines) of one engine (fp16, cuda backend,
ImageNet preprocessing) on synthetic 1280x720 YUYV sources as fast as the
pipelines take frames (each source its own, latest-frame queue of 1; the
frames repeat every 32, so the source costs what a camera's DMA does), it
prints per run: frames per second in all, capture-to-publish latency p50
and p99, the engine time jetrtd measures, jetrtd's CPU use (cores) and the
GPU memory its contexts hold; then the bare engine (`engine-builder bench`
on the engine jetrtd built) and, with one pipeline at half its sustained
rate (no queueing), the latency over the bare engine: the daemon's
overhead. Every result is read by a subscribed client, as a robot's would.
DIR holds jetrtd and engine-builder built with the cuda feature; the CUDA
libraries are found as scripts/check_cuda.py finds them.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_cuda  # noqa: E402
from bench_daemon import Daemon  # noqa: E402
from jetrt_client import Client  # noqa: E402

IMAGENET = 'mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\ninput_size = [224, 224]\n'


def config(d, model, n, fps):
    parts = ['version = 1\n[daemon]\nsocket = "%s/jetrtd.sock"\nstate_dir = "%s/state"\nlog_level = "warn"\n' % (d, d),
             '[engines.net]\nonnx = "%s"\nbackend = "cuda"\nprecision = "fp16"\n%s' % (model, IMAGENET)]
    for i in range(n):
        parts.append('[sources.cam%d]\nkind = "synthetic"\nwidth = 1280\nheight = 720\nformat = "yuyv"\nfps = %g\nqueue = 1\n' % (i, fps))
        parts.append('[pipelines.p%d]\nsource = "cam%d"\nengine = "net"\npostprocess = { kind = "topk", top = 5, probs = false }\n' % (i, i))
    return "\n".join(parts)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(rest[11]) + int(rest[12])) / tick


def readers(sock, names, stop):
    def read(name):
        c = Client(sock, timeout=10.0, name="bench-" + name)
        c.subscribe(name)
        while not stop.is_set():
            c.next_result(timeout=1.0)
        c.close()
    ts = [threading.Thread(target=read, args=(n,)) for n in names]
    for t in ts:
        t.start()
    return ts


def measure(bin_dir, model, n, fps, seconds, env):
    with tempfile.TemporaryDirectory() as d:
        os.environ.update(env)
        dm = Daemon(bin_dir, d, config(d, model, n, fps))
        names = ["p%d" % i for i in range(n)]
        stop = threading.Event()
        ts = readers(os.path.join(d, "jetrtd.sock"), names, stop)
        time.sleep(3.0)  # warm: graphs captured, queues steady
        c0, t0 = cpu_seconds(dm.proc.pid), time.time()
        f0 = {k: v["frames"] for k, v in dm.client.stats()["pipelines"].items()}
        time.sleep(seconds)
        st = dm.client.stats()["pipelines"]
        c1, t1 = cpu_seconds(dm.proc.pid), time.time()
        stop.set()
        for t in ts:
            t.join()
        dm.stop()
        # The bare engine alone on the GPU, right after (the daemon stopped).
        engine_file = None
        for root, _, files in os.walk(os.path.join(d, "state")):
            for f in files:
                if f.endswith(".engine"):
                    engine_file = os.path.join(root, f)
        bare = None
        if engine_file:
            out = subprocess.run([os.path.join(bin_dir, "engine-builder"), "bench", engine_file, "--runs", "300"],
                                 capture_output=True, text=True, env=os.environ).stdout
            m = re.search(r"median ([0-9.]+) ms", out)
            bare = float(m.group(1)) if m else None
    fps_all = sum(st[k]["frames"] - f0.get(k, 0) for k in names) / (t1 - t0)
    p50 = sorted(st[k]["latency_ms"]["p50"] for k in names)[len(names) // 2]
    p99 = max(st[k]["latency_ms"]["p99"] for k in names)
    eng = sorted(st[k]["engine_ms"]["p50"] for k in names)[len(names) // 2]
    gpu = sum((st[k].get("placement") or {}).get("gpu_memory_bytes") or 0 for k in names)
    errors = sum(st[k]["errors"] for k in names)
    return {"fps": fps_all, "p50": p50, "p99": p99, "engine": eng, "cpu": (c1 - c0) / (t1 - t0),
            "gpu_mib": gpu / 2**20, "bare": bare, "errors": errors,
            "backend": (st[names[0]].get("placement") or {}).get("backend")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--model", required=True, help="an ONNX model (resnet18's)")
    ap.add_argument("--pipelines", default="1,2,4")
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    env = {"LD_LIBRARY_PATH": check_cuda.library_path(), "JETRT_CACHE_DIR": "/tmp/jetrt-daemon-bench-cache"}
    print("GPU:", check_cuda.gpu_name(), flush=True)
    rows = []
    for n in [int(x) for x in a.pipelines.split(",")]:
        r = measure(a.bin_dir, os.path.abspath(a.model), n, 1000, a.seconds, env)
        rows.append((n, r))
        print("%d pipeline(s): %s" % (n, r), flush=True)
    one = rows[0][1]
    half = max(1.0, one["fps"] / 2)
    lat = measure(a.bin_dir, os.path.abspath(a.model), 1, half, a.seconds, env)
    print("\n| pipelines | backend | fps (all) | latency p50 ms | p99 ms | engine p50 ms (jetrtd) | jetrtd CPU (cores) | GPU MiB | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in rows:
        print("| %d | %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.0f | %d |" % (
            n, r["backend"], r["fps"], r["p50"], r["p99"], r["engine"], r["cpu"], r["gpu_mib"], r["errors"]))
    print("\nbare engine (engine-builder bench on the engine jetrtd built, alone): median %s ms" % (lat["bare"],))
    print("one pipeline at %.0f fps (half its sustained rate): latency p50 %.2f ms, p99 %.2f ms, "
          "engine p50 (jetrtd: frame upload, conversion, engine) %.2f ms, jetrtd CPU %.2f cores; "
          "capture-to-publish over the bare engine at p50: %.2f ms" % (
              half, lat["p50"], lat["p99"], lat["engine"], lat["cpu"], lat["p50"] - (lat["bare"] or 0)))
    print("scaling: %s" % ", ".join("%d -> %.2fx" % (n, r["fps"] / one["fps"]) for n, r in rows))


if __name__ == "__main__":
    main()
