#!/usr/bin/env python3
"""Check the cuda backend on a GPU machine: the model zoo in fp32 and fp16
and the ONNX node cases, through `engine-builder test --backend cuda`.

Needs no Rust there: give it an engine-builder built elsewhere with the
`cuda` feature (the default). Prints the GPU, one line of counts per suite
and every failure, and writes the full logs to --out.

    python3 scripts/check_cuda.py --engine-builder target/ci/engine-builder \\
        --models ../shared/models --cases target/onnx-cases --out /tmp/cuda

--export-models DIR exports the zoo there first with PyTorch (for a machine
without the model directory): scripts/export_torchvision.py with the same
architectures, exporters and batches as ../shared/models holds.

Tolerances are the cases' own (meta.json): fp32 max|y-ref| <= 1e-4 max|ref|,
fp16 <= 2e-2 max|ref| with the same argmax; node cases the suite default.
TF32 is kept off (NVIDIA_TF32_OVERRIDE=0), as the backend asks of cuDNN
and cuBLAS itself. This is a check, not a benchmark.
"""

import argparse
import concurrent.futures
import glob
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# What ../shared/models holds: (case name, export_torchvision.py arguments).
ZOO = [
    ("squeezenet1_0", ["squeezenet1_0"]),
    ("squeezenet1_1", ["squeezenet1_1"]),
    ("squeezenet1_1_legacy", ["squeezenet1_1", "--exporter", "legacy"]),
    ("resnet18", ["resnet18"]),
    ("resnet18_legacy_dynbatch", ["resnet18", "--exporter", "legacy", "--dynamic-batch", "--batches", "1,4"]),
    ("mobilenet_v2", ["mobilenet_v2"]),
    ("mobilenet_v3_small", ["mobilenet_v3_small"]),
    ("shufflenet_v2_x1_0", ["shufflenet_v2_x1_0"]),
]

# The libraries the backend loads, by the names it looks for.
LIBS = ["libcuda.so", "libnvrtc.so", "libcublas.so", "libcublasLt.so", "libcudnn.so"]


def library_path() -> str:
    """LD_LIBRARY_PATH with every folder holding one of the CUDA libraries
    (pip's nvidia-* packages, the toolkit, the driver)."""
    roots = []
    for site in sys.path:
        roots += glob.glob(os.path.join(site, "nvidia", "*", "lib"))
        roots += glob.glob(os.path.join(site, "nvidia", "*", "lib64"))
    roots += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
              "/usr/local/nvidia/lib64", "/usr/lib/x86_64-linux-gnu"]
    dirs = []
    for d in roots:
        if os.path.isdir(d) and any(glob.glob(os.path.join(d, lib + "*")) for lib in LIBS):
            if d not in dirs:
                dirs.append(d)
    old = os.environ.get("LD_LIBRARY_PATH")
    return ":".join(dirs + ([old] if old else []))


def gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        ).stdout.strip()
        return out.splitlines()[0] if out else "unknown GPU"
    except (OSError, subprocess.SubprocessError):
        return "unknown GPU (no nvidia-smi)"


def export_zoo(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)

    def one(item):
        name, args = item
        cmd = [sys.executable, str(REPO / "scripts" / "export_torchvision.py"), *args,
               "--out", str(dest / name), "-q"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        return name, r.returncode, r.stderr[-2000:]

    t = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(ZOO)) as pool:
        for name, code, err in pool.map(one, ZOO):
            if code != 0:
                sys.exit(f"exporting {name} failed:\n{err}")
    print(f"exported {len(ZOO)} models in {time.time() - t:.0f} s", flush=True)


def run_suite(label, cmd, env, out_dir: Path, timeout: float):
    """Runs one `engine-builder test`, its output streamed to a log (so a
    suite stopped at its time limit still reports what it did)."""
    t = time.time()
    log = out_dir / f"{label.replace(' ', '_')}.log"
    with open(log, "w") as f:
        try:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=timeout)
            finished = r.returncode in (0, 1)
        except subprocess.TimeoutExpired:
            finished = False
    secs = time.time() - t
    text = log.read_text(errors="replace")
    lines = text.splitlines()
    fails = [l for l in lines if l.startswith("FAIL")]
    passed = sum(1 for l in lines if l.startswith("PASS"))
    summary = next((l for l in reversed(lines) if " passed, " in l), None)
    if summary is None or not finished:
        tail = " | ".join(lines[-3:])
        summary = f"STOPPED after {passed} passed, {len(fails)} failed: {tail[-600:]}"
    print(f"{label:<16} {summary}  ({secs:.0f} s)", flush=True)
    return fails, text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine-builder", default=str(REPO / "target" / "ci" / "engine-builder"))
    p.add_argument("--models", help="the model zoo (default: $JETRT_MODELS or ../shared/models)")
    p.add_argument("--export-models", metavar="DIR", help="export the zoo into DIR with PyTorch first")
    p.add_argument("--cases", help="ONNX node cases (scripts/gen_onnx_cases.py writes them)")
    p.add_argument("--plugin", action="append", default=[], help="plugin library, passed on")
    p.add_argument("--out", default="cuda-check", help="folder for the logs")
    p.add_argument("--test-binary", action="append", default=[],
                   help="a Rust test binary built with the cuda feature: its ignored gpu_ tests are run")
    p.add_argument("--skip", action="append", default=[], choices=["fp32", "fp16", "cases"])
    p.add_argument("--timeout", type=float, default=900, help="seconds a suite may take (default 900)")
    a = p.parse_args()

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = library_path()
    env["NVIDIA_TF32_OVERRIDE"] = "0"
    env.setdefault("JETRT_CACHE_DIR", "/tmp/jetrt-cuda-check-cache")
    print(f"GPU: {gpu_name()}")
    print(f"LD_LIBRARY_PATH={env['LD_LIBRARY_PATH']}", flush=True)

    models = a.models or os.environ.get("JETRT_MODELS") or str(REPO.parent / "shared" / "models")
    if a.export_models:
        export_zoo(Path(a.export_models))
        models = a.export_models
    eb = [a.engine_builder]
    plugins = [x for lib in a.plugin for x in ("--plugin", lib)]
    all_fails = []
    if Path(models).is_dir():
        for precision in ["fp32", "fp16"]:
            if precision in a.skip:
                continue
            flags = ["--fp16"] if precision == "fp16" else []
            cmd = eb + ["test", "--backend", "cuda", *flags, *plugins, models]
            f, _ = run_suite(f"models {precision}", cmd, env, out, a.timeout)
            all_fails += [(f"models {precision}", x) for x in f]
    else:
        print(f"SKIPPED the model zoo: {models} is not a directory")
    if a.cases and "cases" not in a.skip:
        lists = ["--allow-list", str(REPO / "tests" / "onnx_allowlist.txt"),
                 "--allow-list", str(REPO / "tests" / "onnx_allowlist_cuda.txt")]
        cmd = eb + ["test", "--backend", "cuda", *plugins, *lists, a.cases]
        f, stdout = run_suite("node cases", cmd, env, out, a.timeout)
        all_fails += [("node cases", x) for x in f]
        for line in stdout.splitlines():
            if line.startswith("excluded by") or line.startswith("  "):
                print("   " + line)
    elif "cases" not in a.skip:
        print("SKIPPED the node cases: no --cases")
    for tb in a.test_binary:
        r = subprocess.run([tb, "--ignored", "gpu_", "--test-threads", "1"], capture_output=True,
                           text=True, env=env, timeout=a.timeout)
        (out / (Path(tb).name + ".log")).write_text(r.stdout + r.stderr)
        summary = next((l for l in r.stdout.splitlines() if l.startswith("test result")), "no result line")
        print(f"{'gpu tests':<16} {summary}", flush=True)
        for l in r.stdout.splitlines():
            if l.startswith("test ") and (l.endswith("FAILED") or l.endswith("ok")):
                print("   " + l)
        if r.returncode != 0:
            all_fails.append(("gpu tests", (r.stdout + r.stderr)[-1500:]))
    if all_fails:
        print(f"\n{len(all_fails)} failures:")
        for label, line in all_fails:
            print(f"  [{label}] {line[:400]}")
    return 1 if all_fails else 0


if __name__ == "__main__":
    sys.exit(main())
