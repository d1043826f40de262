#!/usr/bin/env python3
"""Benchmark jetrt's cuda backend against PyTorch on one GPU, in fp16.

For each model (torchvision, random weights, seeded) and batch size it times:

    jetrt     the model exported to ONNX at that fixed batch, built with
              `engine-builder build --backend cuda --fp16` and timed with
              `engine-builder bench --backend cuda`
    eager     PyTorch eager, model.half().cuda(), under torch.inference_mode()
    graph     the eager model captured once in a torch.cuda.CUDAGraph on a
              static input, then g.replay()
    compile   torch.compile(mode="reduce-overhead") and mode="max-autotune",
              each in a subprocess of this script, stopped (and reported as
              "timeout") after --compile-timeout seconds. With
              --compile-jobs N > 1 every cell is first compiled once, N at a
              time, before anything is timed, into a fresh Inductor cache in
              OUT; the timed runs, one at a time, then load their compiled
              graphs from it. cuDNN's algorithm search and the CUDA graph
              recording still happen in the timed run, alone on the GPU, but
              max-autotune's kernel choices are made in the parallel pass
              (use --compile-jobs 1 to make them alone)

and prints a table of median latencies in ms, with jetrt / best PyTorch, where
best PyTorch is the smaller of graph replay and the torch.compile variants
that finished; the ratio takes jetrt with device-resident I/O, as PyTorch
runs. The table also goes to OUT/bench.md, every median and p99 to
OUT/bench.json; logs, ONNX files and engines stay in OUT.

    python3 scripts/bench_gpu.py --engine-builder target/ci/engine-builder \\
        [--models resnet18,resnet50] [--batches 1,8] [--runs 200] [--warmup 50] \\
        [--skip-compile] [--compile-timeout 300] [--compile-jobs 1] \\
        [--out /tmp/jetrt-bench]

Needs: an NVIDIA GPU, PyTorch with CUDA and torchvision, and an engine-builder
built elsewhere with the `cuda` feature; no Rust, no network (no weights are
downloaded). PyTorch is timed per call as synchronize, perf_counter, f(x),
synchronize, after --warmup calls (which, for torch.compile, include the
compile; its time is not counted). jetrt's bench does its own warm-up (at
least 5 runs and half a second); its host I/O column includes copying the
input from and the output to host memory, which PyTorch's numbers do not.

This is a benchmark, not a test: run it on an otherwise idle GPU. With
--skip-compile the default set takes a few minutes; each torch.compile run
may take up to --compile-timeout seconds (max-autotune most of that).
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_cuda  # noqa: E402  (library_path, gpu_name)

REPO = Path(__file__).resolve().parent.parent

MODELS = ["resnet18", "resnet50", "squeezenet1_1", "mobilenet_v2", "densenet121", "convnext_tiny"]
COMPILE_MODES = ["reduce-overhead", "max-autotune"]
# The timed variants, in table order: (key in a row, column header).
VARIANTS = [
    ("jetrt", "jetrt ms"),
    ("jetrt_host", "jetrt host I/O"),
    ("eager", "eager"),
    ("graph", "graph"),
    ("reduce-overhead", "compile (reduce-overhead)"),
    ("max-autotune", "compile (max-autotune)"),
]
# "best PyTorch" is the smaller of these (as the project defines it).
BEST_OF = ["graph", *COMPILE_MODES]
BUILD_TIMEOUT = 900  # seconds an engine build may take
BENCH_TIMEOUT = 300  # seconds an `engine-builder bench` may take
RESULT_TAG = "BENCH_GPU_RESULT "  # how a compile worker reports its numbers
NOTE = ("Note: jetrt ms and PyTorch keep the input and output in device memory; "
        "jetrt host I/O also copies them from and to pinned host memory each run.")


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def say(*args):
    print(*args, flush=True)


def first_line(text: str, limit: int = 300) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


def short_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {first_line(str(e)) or '(no message)'}"


def stats(times):
    """Median and p99 of a list of ms, picked as `engine-builder bench` does."""
    times = sorted(times)
    pick = lambda q: times[round((len(times) - 1) * q)]  # noqa: E731
    return {"median": pick(0.5), "p99": pick(0.99)}


def describe(cell) -> str:
    if isinstance(cell, dict):
        p99 = cell.get("p99")
        return f"{cell['median']:.3f} ms" + (f" (p99 {p99:.3f})" if p99 is not None else "")
    return str(cell)


def fmt(cell, key="median") -> str:
    if isinstance(cell, dict):
        v = cell.get(key)
        return "-" if v is None else f"{v:.3f}"
    return cell if cell else "-"


def positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def nonnegative_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return v


def name_list(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def batch_list(text):
    out = []
    for part in text.split(","):
        if part.strip():
            out.append(positive_int(part.strip()))
    if not out:
        raise argparse.ArgumentTypeError("expected a comma-separated list of batch sizes")
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------
# PyTorch side (torch is imported only here, so --help works without it)
# --------------------------------------------------------------------------

def load_torch():
    try:
        import torch
        import torchvision
    except ImportError as e:
        sys.exit(f"error: {e}: this benchmark needs PyTorch (with CUDA) and torchvision")
    return torch, torchvision


def make_model(torch, torchvision, name):
    """torchvision.models.<name>(weights=None), seeded random weights, eval()."""
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval()


def time_gpu(torch, f, x, warmup, runs, before=None):
    """warmup calls, then runs timed calls each between two synchronizes."""
    for _ in range(warmup):
        if before:
            before()
        f(x)
    times = []
    out = None
    for _ in range(runs):
        if before:
            before()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = f(x)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    del out
    return stats(times)


def bench_eager(torch, model, x, a):
    with torch.inference_mode():
        return time_gpu(torch, model, x, a.warmup, a.runs)


def bench_graph(torch, model, x, a):
    """Capture as the PyTorch docs show: warm up on a side stream, then
    torch.cuda.graph(g); time g.replay() on the static input."""
    with torch.inference_mode():
        static_x = x.clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                model(static_x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            static_out = model(static_x)
        try:
            return time_gpu(torch, lambda _x: g.replay(), static_x, a.warmup, a.runs)
        finally:
            del static_out, g


def export_onnx(torch, model, batch, path: Path):
    """The fp32 CPU model to ONNX at a fixed batch (legacy exporter, opset 17)."""
    x = torch.randn(batch, 3, 224, 224)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])


def compile_worker(a) -> int:
    """--compile-worker MODEL:BATCH:MODE: one torch.compile cell, in its own
    process so that the parent can stop it. Prints RESULT_TAG + JSON last."""
    try:
        name, batch, mode = a.compile_worker.split(":")
        batch = int(batch)
    except ValueError:
        sys.exit(f"error: --compile-worker wants MODEL:BATCH:MODE, got {a.compile_worker!r}")
    torch, torchvision = load_torch()
    try:
        torch.backends.cudnn.benchmark = True
        model = make_model(torch, torchvision, name).half().cuda()
        torch.manual_seed(0)
        x = torch.randn(batch, 3, 224, 224).half().cuda()
        compiled = torch.compile(model, mode=mode)
        # Both modes use CUDA graphs (cudagraph trees); mark each call a new
        # step, outside the timed window.
        mark = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
        with torch.inference_mode():
            t = time.perf_counter()
            if mark:
                mark()
            compiled(x)
            torch.cuda.synchronize()
            first = time.perf_counter() - t
            say(f"{name} b{batch} {mode}: first call (compile) {first:.1f} s")
            if a.compile_warm_only:
                say(RESULT_TAG + json.dumps({"compile_s": round(first, 2)}))
                return 0
            # A few calls at least, so that the graphs are recorded before timing.
            res = time_gpu(torch, compiled, x, max(a.warmup, 3), a.runs, before=mark)
        res["compile_s"] = round(first, 2)
        say(RESULT_TAG + json.dumps(res))
        return 0
    except Exception as e:  # the log keeps the traceback; the parent shows the last line
        traceback.print_exc()
        say(f"error: {short_error(e)}")
        return 1


def kill_group(p):
    """Stops a worker started with start_new_session=True and what it spawned."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def bench_compile(a, name, batch, mode, logs: Path, warm_only=False):
    """One torch.compile cell in a worker process; with warm_only the worker
    compiles (filling the Inductor cache) and exits without timing."""
    label = f"{name} b{batch} compile ({mode})" + (" pre-compile" if warm_only else "")
    log = logs / f"{name}_b{batch}_compile_{mode}{'_pre' if warm_only else ''}.log"
    cmd = [sys.executable, "-u", str(Path(__file__).resolve()),
           "--compile-worker", f"{name}:{batch}:{mode}",
           "--runs", str(a.runs), "--warmup", str(a.warmup)]
    if warm_only:
        cmd.append("--compile-warm-only")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("NVIDIA_TF32_OVERRIDE", None)
    if a.inductor_cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(a.inductor_cache)
    t = time.time()
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        try:
            code = p.wait(timeout=a.compile_timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if p.poll() is None:
                kill_group(p)
    secs = time.time() - t
    if code is None:
        say(f"{label}: timeout (stopped after {a.compile_timeout:.0f} s; log {log})")
        return "timeout"
    lines = log.read_text(errors="replace").splitlines()
    result = next((l for l in reversed(lines) if l.startswith(RESULT_TAG)), None)
    if code != 0 or result is None:
        msg = next((l for l in reversed(lines) if l.startswith("error: ")), None)
        msg = msg or next((l for l in reversed(lines) if l.strip()), f"exit status {code}")
        say(f"{label}: failed: {msg[:300]} (log {log})")
        return "failed"
    cell = json.loads(result[len(RESULT_TAG):])
    if warm_only:
        say(f"{label}: compiled in {cell.get('compile_s', 0):.0f} s, {secs:.0f} s in all")
        return cell
    say(f"{label}: {describe(cell)}, compile {cell.get('compile_s', 0):.0f} s, "
        f"{secs:.0f} s in all")
    return cell


def compile_cells(a):
    """The (model, batch, mode) cells torch.compile is timed for."""
    if a.skip_compile:
        return []
    return [(name, b, mode) for name in a.models for b in a.batches for mode in COMPILE_MODES
            if mode in a.compile_modes and b in a.compile_batches]


def precompile(a, logs: Path):
    """--compile-jobs N > 1: compiles every cell once, N at a time, before
    anything is timed, so that the timed runs load their graphs from the
    Inductor cache. Nothing else uses the GPU meanwhile."""
    cells = compile_cells(a)
    if a.compile_jobs <= 1 or not cells:
        return
    say(f"pre-compiling {len(cells)} torch.compile cells, {a.compile_jobs} at a time, "
        f"into {a.inductor_cache}")
    t = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.compile_jobs) as pool:
        list(pool.map(lambda c: bench_compile(a, *c, logs, warm_only=True), cells))
    say(f"pre-compiled in {time.time() - t:.0f} s\n")


# --------------------------------------------------------------------------
# jetrt side
# --------------------------------------------------------------------------

def run_engine_builder(cmd, env, log: Path, timeout):
    """Returns (stdout, None), or (None, why it failed)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        log.write_text(f"$ {' '.join(cmd)}\ntimed out after {timeout} s\n")
        return None, f"timed out after {timeout} s"
    except OSError as e:
        log.write_text(f"$ {' '.join(cmd)}\n{e}\n")
        return None, str(e)
    log.write_text(f"$ {' '.join(cmd)}\n{r.stdout}\n--- stderr\n{r.stderr}")
    if r.returncode != 0:
        return None, first_line(r.stderr) or f"exit status {r.returncode}"
    return r.stdout, None


def bench_jetrt(a, env, name, batch, onnx: Path, dirs):
    label = f"{name} b{batch} jetrt"
    eb = str(a.engine_builder)
    engine = dirs["engines"] / f"{name}_b{batch}.engine"
    t = time.time()
    _, err = run_engine_builder(
        [eb, "build", str(onnx), "-o", str(engine), "--backend", "cuda", "--fp16"],
        env, dirs["logs"] / f"{name}_b{batch}_build.log", BUILD_TIMEOUT)
    if err:
        say(f"{label}: build failed: {err}")
        return "failed"
    built = time.time() - t
    cells = {}
    for key, flags, what in (("jetrt", ["--device-io"], "device I/O"),
                             ("jetrt_host", [], "host I/O")):
        out, err = run_engine_builder(
            [eb, "bench", str(engine), "--runs", str(a.runs), "--backend", "cuda", *flags],
            env, dirs["logs"] / f"{name}_b{batch}_bench_{key}.log", BENCH_TIMEOUT)
        if err:
            say(f"{label} ({what}): bench failed: {err}")
            cells[key] = "failed"
            continue
        cell = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in ("median", "p99") and parts[2] == "ms":
                try:
                    cell[parts[0]] = float(parts[1])
                except ValueError:
                    pass
        if "median" not in cell:
            say(f"{label} ({what}): bench failed: no 'median X ms' line in its output: "
                f"{first_line(out)}")
            cells[key] = "failed"
            continue
        say(f"{label} ({what}): {describe(cell)} (build {built:.1f} s)")
        cells[key] = cell
    return cells


# --------------------------------------------------------------------------
# one model, every batch
# --------------------------------------------------------------------------

def bench_model(torch, torchvision, name, a, env, dirs, rows):
    for b in a.batches:
        rows[(name, b)] = {key: "-" for key, _ in VARIANTS}
    try:
        model = make_model(torch, torchvision, name)
    except Exception as e:
        say(f"{name}: error building the model: {short_error(e)}")
        for b in a.batches:
            rows[(name, b)] = {key: "error" for key, _ in VARIANTS}
        return

    # jetrt first, while the model is fp32 on the CPU: one ONNX file per batch.
    for b in a.batches:
        row = rows[(name, b)]
        try:
            onnx = dirs["onnx"] / f"{name}_b{b}.onnx"
            t = time.time()
            export_onnx(torch, model, b, onnx)
            say(f"{name} b{b}: exported {onnx.name} in {time.time() - t:.1f} s")
            cells = bench_jetrt(a, env, name, b, onnx, dirs)
            if isinstance(cells, dict):
                row.update(cells)
            else:
                row["jetrt"] = row["jetrt_host"] = cells
        except Exception as e:
            say(f"{name} b{b} jetrt: error: {short_error(e)}")
            row["jetrt"] = row["jetrt_host"] = "error"

    # PyTorch eager and CUDA-graph replay, in this process.
    try:
        model = model.half().cuda()
    except Exception as e:
        say(f"{name}: error moving the model to the GPU: {short_error(e)}")
        model = None
    for b in a.batches:
        row = rows[(name, b)]
        if model is None:
            row["eager"] = row["graph"] = "error"
            continue
        try:
            x = torch.randn(b, 3, 224, 224).half().cuda()
        except Exception as e:
            say(f"{name} b{b}: error making the input: {short_error(e)}")
            row["eager"] = row["graph"] = "error"
            continue
        for key, fn in (("eager", bench_eager), ("graph", bench_graph)):
            try:
                row[key] = fn(torch, model, x, a)
                say(f"{name} b{b} {key}: {describe(row[key])}")
            except Exception as e:
                say(f"{name} b{b} {key}: error: {short_error(e)}")
                row[key] = "error"
            torch.cuda.empty_cache()
        del x
    del model
    torch.cuda.empty_cache()

    # torch.compile, each cell in its own process under --compile-timeout.
    for b in a.batches:
        row = rows[(name, b)]
        for mode in COMPILE_MODES:
            if a.skip_compile or mode not in a.compile_modes or b not in a.compile_batches:
                row[mode] = "skipped"
                continue
            try:
                row[mode] = bench_compile(a, name, b, mode, dirs["logs"])
            except Exception as e:
                say(f"{name} b{b} compile ({mode}): error: {short_error(e)}")
                row[mode] = "error"


# --------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------

def best_pytorch(row):
    done = [(row[k]["median"], k) for k in BEST_OF if isinstance(row.get(k), dict)]
    return min(done) if done else None


def markdown(header, body, left=2):
    """A Markdown table padded to line up as plain text too."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ) + " |"

    rule = "|" + "|".join(
        "-" * (w + 2) if i < left else "-" * (w + 1) + ":" for i, w in enumerate(widths)
    ) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in body)])


def median_table(rows):
    header = ["model", "batch", *(h for _, h in VARIANTS), "best PyTorch", "jetrt / best"]
    body = []
    for (name, b), row in rows.items():
        best = best_pytorch(row)
        best_s = f"{best[0]:.3f} ({best[1]})" if best else "-"
        j = row.get("jetrt")
        ratio = f"{j['median'] / best[0]:.2f}" if best and isinstance(j, dict) and best[0] > 0 else "-"
        body.append([name, str(b), *(fmt(row.get(k)) for k, _ in VARIANTS), best_s, ratio])
    return markdown(header, body)


def p99_table(rows):
    header = ["model", "batch", *(h for _, h in VARIANTS)]
    body = [[name, str(b), *(fmt(row.get(k), "p99") for k, _ in VARIANTS)]
            for (name, b), row in rows.items()]
    return markdown(header, body)


def report(rows, info, out: Path, interrupted: bool, quiet: bool = False):
    """Writes OUT/bench.md and OUT/bench.json; prints the tables unless quiet."""
    head = [f"GPU: {info['gpu']}",
            f"torch {info['torch']} (CUDA {info['cuda']}, cuDNN {info['cudnn']}), "
            f"torchvision {info['torchvision']}",
            f"fp16; {info['runs']} timed runs after {info['warmup']} warm-up "
            f"(jetrt: its bench's own warm-up); medians in ms"]
    if interrupted:
        head.append("INTERRUPTED: the table holds what finished")
    medians, p99s = median_table(rows), p99_table(rows)
    if not quiet:
        say()
        say(medians)
        say()
        say(NOTE)
        say()
        say("p99 ms:\n")
        say(p99s)
    md = "\n".join([
        "# jetrt cuda backend vs PyTorch", "",
        *(h + "  " for h in head), "",
        medians, "", NOTE, "", "p99 ms:", "", p99s, "",
    ])
    (out / "bench.md").write_text(md)
    data = dict(info, interrupted=interrupted, rows=[
        dict(model=name, batch=b, **row) for (name, b), row in rows.items()
    ])
    (out / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    if not quiet:
        say(f"\nwrote {out / 'bench.md'} and {out / 'bench.json'}")


# --------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine-builder", type=Path, metavar="PATH",
                   default=REPO / "target" / "ci" / "engine-builder",
                   help="a prebuilt engine-builder with the cuda feature "
                        "(default: target/ci/engine-builder)")
    p.add_argument("--models", type=name_list, default=MODELS, metavar="LIST",
                   help=f"comma-separated torchvision models (default: {','.join(MODELS)})")
    p.add_argument("--batches", type=batch_list, default=[1, 8], metavar="LIST",
                   help="comma-separated batch sizes (default: 1,8)")
    p.add_argument("--runs", type=positive_int, default=200, metavar="N",
                   help="timed runs (default 200)")
    p.add_argument("--warmup", type=nonnegative_int, default=50, metavar="N",
                   help="PyTorch warm-up calls before timing (default 50)")
    p.add_argument("--skip-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--compile-modes", type=name_list, default=COMPILE_MODES, metavar="LIST",
                   help="torch.compile modes to time (default: reduce-overhead,max-autotune)")
    p.add_argument("--compile-batches", type=batch_list, default=None, metavar="LIST",
                   help="batch sizes torch.compile is timed at (default: every one of --batches)")
    p.add_argument("--compile-timeout", type=positive_float, default=300, metavar="S",
                   help="seconds one torch.compile run may take, compile and timing "
                        "together (default 300)")
    p.add_argument("--compile-jobs", type=positive_int, default=1, metavar="N",
                   help="compile the torch.compile cells N at a time before timing "
                        "them one at a time (default 1: each compiles in its timed run)")
    p.add_argument("--out", type=Path, default=Path("/tmp/jetrt-bench"), metavar="DIR",
                   help="folder for logs, ONNX files, engines, bench.md (default /tmp/jetrt-bench)")
    p.add_argument("--compile-worker", metavar="MODEL:BATCH:MODE", help=argparse.SUPPRESS)
    p.add_argument("--compile-warm-only", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def main() -> int:
    a = parse_args()
    if a.compile_worker:
        return compile_worker(a)
    if a.compile_batches is None:
        a.compile_batches = a.batches
    unknown = [m for m in a.compile_modes if m not in COMPILE_MODES]
    if unknown:
        sys.exit(f"error: unknown torch.compile mode(s) {', '.join(unknown)} (known: {', '.join(COMPILE_MODES)})")

    eb = a.engine_builder
    if not eb.is_file() or not os.access(eb, os.X_OK):
        sys.exit(f"error: {eb} is not an executable file: give --engine-builder PATH "
                 "(an engine-builder built with the cuda feature)")
    a.engine_builder = eb.resolve()
    torch, torchvision = load_torch()
    if not torch.cuda.is_available():
        sys.exit(f"error: PyTorch {torch.__version__} sees no CUDA device "
                 f"(built for CUDA {torch.version.cuda})")
    try:
        known = set(torchvision.models.list_models(module=torchvision.models))
    except (AttributeError, TypeError):
        known = {n for n in dir(torchvision.models)
                 if not n.startswith("_") and n.islower() and callable(getattr(torchvision.models, n))}
    unknown = [m for m in a.models if m not in known]
    if unknown:
        sys.exit(f"error: not a torchvision classification model: {', '.join(unknown)} "
                 f"(e.g. {', '.join(MODELS)})")

    out = a.out
    dirs = {k: out / k for k in ("onnx", "engines", "logs", "cache")}
    # A fresh Inductor cache for the pre-compile pass and the timed runs
    # alone, so that nothing compiled elsewhere is reused.
    a.inductor_cache = None
    if a.compile_jobs > 1:
        a.inductor_cache = out / "inductor-cache"
        shutil.rmtree(a.inductor_cache, ignore_errors=True)
        dirs["inductor"] = a.inductor_cache
    try:
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        sys.exit(f"error: cannot make {out}: {e}")

    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = check_cuda.library_path()
    env.pop("NVIDIA_TF32_OVERRIDE", None)
    env["JETRT_CACHE_DIR"] = str(dirs["cache"])
    torch.backends.cudnn.benchmark = True

    info = {
        "gpu": check_cuda.gpu_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "torchvision": torchvision.__version__,
        "runs": a.runs,
        "warmup": a.warmup,
        "batches": a.batches,
        "engine_builder": str(a.engine_builder),
    }
    say(f"GPU: {info['gpu']}")
    say(f"torch {info['torch']} (CUDA {info['cuda']}, cuDNN {info['cudnn']}), "
        f"torchvision {info['torchvision']}")
    say(f"engine-builder: {a.engine_builder}")
    say(f"LD_LIBRARY_PATH={env['LD_LIBRARY_PATH']}")
    say(f"models {','.join(a.models)}; batches {','.join(map(str, a.batches))}; fp16; "
        f"{a.runs} runs after {a.warmup} warm-up; "
        + ("torch.compile skipped" if a.skip_compile
           else f"torch.compile up to {a.compile_timeout:.0f} s a run"
           + (f", pre-compiled {a.compile_jobs} at a time" if a.compile_jobs > 1 else "")))
    say(f"logs, ONNX files and engines in {out}\n")

    rows = {}
    interrupted = False
    t = time.time()
    try:
        precompile(a, dirs["logs"])
        for name in a.models:
            bench_model(torch, torchvision, name, a, env, dirs, rows)
            # What is measured so far is on disk, should a later model hang.
            report(rows, info, out, interrupted=False, quiet=True)
    except KeyboardInterrupt:
        interrupted = True
        say("\ninterrupted")
    say(f"\n{len(rows)} model/batch rows in {time.time() - t:.0f} s")
    report(rows, info, out, interrupted)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
