#!/usr/bin/env python3
"""Benchmark jetrt's cpu backend against ONNX Runtime, model by model.

For every model folder in JETRT_MODELS (or the folders given), builds an
engine with engine-builder, then times `engine-builder bench` and ONNX
Runtime on the CPU with the same thread count, batch 1, each alone in its own
process, alternating rounds so that both see the same machine state. Prints
a table of median latencies and the ratio jetrt / ONNX Runtime, then each
model family's geometric-mean ratio. A model that fails to build or run is
reported in the table (with the first line of its error) and the others go
on; an interrupt prints the table of the models done so far.

    python3 scripts/bench_cpu.py [--threads 2] [--rounds 3] [--runs 200] [MODEL_DIR ...]

Needs: a release engine-builder (cargo build --release) and
`pip install onnxruntime numpy`. This is a benchmark, not a test: run it on
an otherwise idle machine.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ORT_SNIPPET = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
path, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
feeds = {}
for i in s.get_inputs():
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    feeds[i.name] = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
t_end = time.perf_counter() + 0.5
warm = 0
while warm < 5 or time.perf_counter() < t_end:
    s.run(None, feeds)
    warm += 1
times = []
for _ in range(runs):
    t = time.perf_counter()
    s.run(None, feeds)
    times.append((time.perf_counter() - t) * 1e3)
times.sort()
print(json.dumps({"median": times[len(times) // 2]}))
"""


def jetrt_bench(eb, engine, threads, runs):
    out = subprocess.run(
        [eb, "bench", engine, "--threads", str(threads), "--runs", str(runs)],
        check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("median "):
            return float(line.split()[1])
    raise RuntimeError(f"no median in: {out}")


def ort_bench(model, threads, runs):
    out = subprocess.run(
        [sys.executable, "-c", ORT_SNIPPET, model, str(threads), str(runs)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["median"]


# Model families, by folder-name prefix, for the summary.
FAMILIES = ["resnet", "mobilenet", "squeezenet", "shufflenet", "densenet", "efficientnet",
            "regnet", "convnext", "vit", "swin", "yolo"]


def family(name: str) -> str:
    low = name.lower()
    for f in FAMILIES:
        if low.startswith(f):
            return f
    return low.split("_")[0]


def first_line(e: BaseException) -> str:
    if isinstance(e, subprocess.CalledProcessError):
        text = (e.stderr or e.stdout or "").strip()
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return (lines[-1] if lines else f"exit status {e.returncode}")[:160]
    return f"{type(e).__name__}: {e}"[:160]


def bench_model(eb, m: Path, tmp: str, args):
    """(jetrt median, ORT median) for one model folder."""
    engine = str(Path(tmp) / f"{m.name}.engine")
    # Dynamic-batch models are built (and timed) at batch 1.
    subprocess.run([eb, "build", str(m / "model.onnx"), "-o", engine], check=True,
                   capture_output=True, text=True)
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(jetrt_bench(eb, engine, args.threads, args.runs))
        theirs.append(ort_bench(str(m / "model.onnx"), args.threads, args.runs))
    return statistics.median(ours), statistics.median(theirs)


def report(rows):
    print()
    print(f"{'model':<28} {'jetrt ms':>10} {'ORT ms':>10} {'ratio':>7}")
    for name, j, o, r, err in rows:
        if err:
            print(f"{name:<28} {'failed: ' + err}")
        else:
            print(f"{name:<28} {j:>10.3f} {o:>10.3f} {r:>7.2f}")
    fams = {}
    for name, _, _, r, err in rows:
        if not err:
            fams.setdefault(family(name), []).append(r)
    if fams:
        print()
        print(f"{'family':<16} {'models':>6} {'geomean ratio':>14}")
        for f, rs in sorted(fams.items()):
            g = math.exp(sum(math.log(r) for r in rs) / len(rs))
            print(f"{f:<16} {len(rs):>6} {g:>14.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help="model folders (default: every folder in $JETRT_MODELS)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per model (median taken)")
    p.add_argument("--runs", type=int, default=200, help="timed runs per round")
    p.add_argument("--engine-builder", default=str(REPO / "target" / "release" / "engine-builder"))
    args = p.parse_args()

    try:
        import onnxruntime
    except ImportError:
        sys.exit("error: onnxruntime is missing: pip install onnxruntime numpy")
    eb = args.engine_builder
    if not os.access(eb, os.X_OK):
        sys.exit(f"error: {eb} not found: cargo build --release --bin engine-builder")
    models = [Path(m) for m in args.models]
    if not models:
        root = os.environ.get("JETRT_MODELS")
        if not root:
            sys.exit("error: give model folders or set JETRT_MODELS")
        models = sorted(d for d in Path(root).iterdir() if (d / "model.onnx").exists())

    print(f"cpu: {os.cpu_count()} cores; threads {args.threads}; batch 1; onnxruntime {onnxruntime.__version__}")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for m in models:
                try:
                    j, o = bench_model(eb, m, tmp, args)
                except (subprocess.CalledProcessError, RuntimeError, ValueError, OSError) as e:
                    rows.append((m.name, 0.0, 0.0, 0.0, first_line(e)))
                    print(f"  {m.name}: failed: {first_line(e)}", file=sys.stderr)
                    continue
                rows.append((m.name, j, o, j / o, None))
                print(f"  {m.name}: jetrt {j:.3f} ms, onnxruntime {o:.3f} ms", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: the models done so far", file=sys.stderr)
        report(rows)
        return 130
    report(rows)
    return 1 if any(r[4] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
