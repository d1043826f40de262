#!/usr/bin/env python3
"""Export a torchvision model to ONNX as a jetrt test case.

The case directory follows the ONNX backend-test layout::

    OUT/
      model.onnx                  the exported model (weights inline when < 2 GB)
      meta.json                   provenance, op list, batches, tolerances
      test_data_set_0/            one data set per batch size
        input_0.pb                random-normal input (serialized onnx TensorProto)
        output_0.pb               PyTorch float32 reference output(s)
      test_data_set_1/ ...

Supported architectures are the image classification models in
``torchvision.models`` (resnet18, mobilenet_v2, squeezenet1_1, alexnet, ...)
and the semantic segmentation models in ``torchvision.models.segmentation``
(lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large, fcn_resnet50, ...).
Segmentation models are wrapped so that the single output is the ``'out'``
tensor.

Without ``--weights`` the model gets random weights (seeded) and every
BatchNorm layer gets randomised running statistics and affine parameters, so
that BatchNorm folding in the engine builder is actually exercised.  Nothing
is downloaded: pretrained torchvision weights are never requested.

Examples::

    # ResNet-18, random weights, 1x3x224x224
    python3 scripts/export_torchvision.py resnet18 --out models/resnet18

    # JetBot collision avoidance model (ResNet-18 with a 2-way head)
    python3 scripts/export_torchvision.py resnet18 --num-classes 2 \\
        --weights best_model.pth --out models/jetbot_collision

    # legacy TorchScript-based exporter, dynamic batch, tested at batch 1 and 4
    python3 scripts/export_torchvision.py mobilenet_v2 --exporter legacy \\
        --batches 1,4 --out models/mobilenet_v2_legacy_dynbatch
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings

TOLERANCE = {
    "fp32": "max|y-ref| <= 1e-4 * max|ref|",
    "fp16": "max|y-ref| <= 2e-2 * max|ref| and same argmax",
}
DEFAULT_OPSET = {"dynamo": 20, "legacy": 17}
TWO_GB = 2 * 1024**3


class ExportError(Exception):
    """A user-facing error: printed without a traceback."""


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------

def parse_size(text: str) -> tuple[int, int]:
    t = text.lower().replace(" ", "")
    try:
        if "x" in t:
            h, w = t.split("x", 1)
            size = (int(h), int(w))
        else:
            size = (int(t), int(t))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 224x224), got {text!r}")
    if min(size) <= 0:
        raise argparse.ArgumentTypeError(f"input size must be positive, got {text!r}")
    return size


def parse_batches(text: str) -> list[int]:
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {text!r}")
    if not batches or min(batches) <= 0:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return batches


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="export_torchvision.py",
        description=(
            "Export a torchvision classification or segmentation model to ONNX "
            "in the ONNX backend-test layout (model.onnx, test_data_set_K/"
            "{input,output}_J.pb, meta.json), with PyTorch float32 reference "
            "outputs for every requested batch size."),
        epilog=(
            "examples:\n"
            "  %(prog)s resnet18 --out models/resnet18\n"
            "  %(prog)s resnet18 --num-classes 2 --weights best_model.pth --out models/jetbot_collision\n"
            "  %(prog)s lraspp_mobilenet_v3_large --exporter legacy --out models/lraspp_legacy\n"
            "  %(prog)s mobilenet_v2 --batches 1,4 --out models/mobilenet_v2_dynbatch"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("arch", nargs="?", help="architecture name, e.g. resnet18, mobilenet_v2, squeezenet1_1, "
                                "lraspp_mobilenet_v3_large, deeplabv3_mobilenet_v3_large, fcn_resnet50 "
                                "(see --list)")
    p.add_argument("--out", metavar="DIR",
                   help="case directory to create (default: ./ARCH); existing model.onnx, "
                        "meta.json and test_data_set_* in it are replaced")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", metavar="PATH",
                     help="state dict to load (.pth/.pt): a raw state_dict or a checkpoint dict "
                          "with a 'state_dict' or 'model' entry; a 'module.' prefix is stripped")
    src.add_argument("--random-weights", action="store_true",
                     help="random weights from --seed, with randomised BatchNorm statistics "
                          "(the default when --weights is not given)")
    p.add_argument("--bn-stats", choices=("random", "calibrated"), default="random",
                   help="with random weights: how BatchNorm running statistics are set. "
                        "random: mean ~ N(0, 0.1), var ~ U(0.5, 1.5); calibrated: measured on a "
                        "random batch then perturbed, which keeps outputs well scaled in deep "
                        "models such as inception_v3 (default: random)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="load --weights with torch.load(weights_only=False); needed for "
                        "checkpoints holding arbitrary Python objects. Only use on trusted files")
    p.add_argument("--num-classes", type=int, metavar="N",
                   help="replace the classifier head with one that has N outputs, before "
                        "loading --weights (e.g. 2 for the JetBot collision-avoidance model)")
    p.add_argument("--input-size", type=parse_size, default=(224, 224), metavar="HxW",
                   help="input height x width (default: 224x224)")
    p.add_argument("--batches", type=parse_batches, default=[1], metavar="B[,B...]",
                   help="batch sizes, one test_data_set per entry (default: 1); more than one "
                        "implies --dynamic-batch")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="export with a symbolic batch dimension named 'batch'")
    p.add_argument("--exporter", choices=("dynamo", "legacy"), default="dynamo",
                   help="dynamo: torch.onnx.export(dynamo=True); legacy: TorchScript-based "
                        "torch.onnx.export(dynamo=False, do_constant_folding=True) (default: dynamo)")
    p.add_argument("--opset", type=int, metavar="N",
                   help="ONNX opset version (default: 20 for dynamo, 17 for legacy)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and inputs (default: 0)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the onnxruntime comparison against the reference outputs "
                        "(only run when onnxruntime is installed)")
    p.add_argument("--list", action="store_true",
                   help="list the supported architecture names and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="silence exporter warnings and logs")
    return p


# --------------------------------------------------------------------------
# model construction
# --------------------------------------------------------------------------

def model_families():
    """Map architecture name -> (family, qualified builder name)."""
    import torchvision.models as tvm

    fams = {}
    for name in tvm.list_models(module=tvm):
        fams[name] = ("classification", f"torchvision.models.{name}")
    for name in tvm.list_models(module=tvm.segmentation):
        fams[name] = ("segmentation", f"torchvision.models.segmentation.{name}")
    unsupported = {}
    for mod_name in ("detection", "video", "optical_flow", "quantization"):
        mod = getattr(tvm, mod_name, None)
        if mod is None:
            continue
        for name in tvm.list_models(module=mod):
            unsupported.setdefault(name, mod_name)
    return fams, unsupported


def build_model(arch: str):
    import torchvision.models as tvm

    fams, unsupported = model_families()
    if arch not in fams:
        if arch in unsupported:
            raise ExportError(
                f"'{arch}' is a torchvision {unsupported[arch]} model; only image classification "
                f"(torchvision.models) and semantic segmentation "
                f"(torchvision.models.segmentation) architectures are supported")
        close = difflib.get_close_matches(arch, list(fams), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; use --list to see all names"
        raise ExportError(f"unknown torchvision architecture '{arch}'{hint}")
    family, qualname = fams[arch]
    builder = tvm.get_model_builder(arch)

    kwargs = {"weights": None}
    if family == "segmentation":
        kwargs.update(weights_backbone=None, aux_loss=False)
    if arch in ("googlenet", "inception_v3"):
        # without pretrained weights these default to aux heads and warn about init
        kwargs.update(aux_logits=False, init_weights=True)
    try:
        model = builder(**kwargs)
    except TypeError:
        model = builder(weights=None)
    return model, family, qualname


def _replace_conv(conv, n):
    import torch.nn as nn

    new = nn.Conv2d(conv.in_channels, n, kernel_size=conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=1,
                    bias=conv.bias is not None)
    return new


def replace_head(model, family: str, n: int) -> str:
    """Give the model an n-way output layer; returns a description of what was replaced."""
    import torch.nn as nn

    if n <= 0:
        raise ExportError(f"--num-classes must be positive, got {n}")

    if family == "segmentation":
        cls = getattr(model, "classifier", None)
        if cls is not None and hasattr(cls, "low_classifier") and hasattr(cls, "high_classifier"):
            cls.low_classifier = _replace_conv(cls.low_classifier, n)
            cls.high_classifier = _replace_conv(cls.high_classifier, n)
            return "classifier.low_classifier/high_classifier (Conv2d)"
        if isinstance(cls, nn.Sequential) and isinstance(cls[-1], nn.Conv2d):
            cls[-1] = _replace_conv(cls[-1], n)
            aux = getattr(model, "aux_classifier", None)
            if isinstance(aux, nn.Sequential) and isinstance(aux[-1], nn.Conv2d):
                aux[-1] = _replace_conv(aux[-1], n)
            return f"classifier[{len(cls) - 1}] (Conv2d)"
        raise ExportError(f"don't know how to replace the head of {type(model).__name__}")

    # classification: try the common layouts in order
    for attr in ("fc", "head", "classifier"):
        mod = getattr(model, attr, None)
        if isinstance(mod, nn.Linear):
            setattr(model, attr, nn.Linear(mod.in_features, n, bias=mod.bias is not None))
            return f"{attr} (Linear)"
    heads = getattr(model, "heads", None)  # vision transformer
    if isinstance(heads, nn.Sequential) and isinstance(getattr(heads, "head", None), nn.Linear):
        heads.head = nn.Linear(heads.head.in_features, n, bias=heads.head.bias is not None)
        return "heads.head (Linear)"
    cls = getattr(model, "classifier", None)
    if isinstance(cls, nn.Sequential):
        # squeezenet: Dropout, Conv2d(512, classes, 1), ReLU, AdaptiveAvgPool2d
        convs = [i for i, m in enumerate(cls) if isinstance(m, nn.Conv2d)]
        linears = [i for i, m in enumerate(cls) if isinstance(m, nn.Linear)]
        if linears and linears[-1] == max(convs + linears):
            i = linears[-1]
            cls[i] = nn.Linear(cls[i].in_features, n, bias=cls[i].bias is not None)
            return f"classifier[{i}] (Linear)"
        if convs:
            i = convs[-1]
            cls[i] = _replace_conv(cls[i], n)
            if hasattr(model, "num_classes"):
                model.num_classes = n
            return f"classifier[{i}] (Conv2d)"
    raise ExportError(
        f"don't know how to replace the classifier head of {type(model).__name__} "
        f"(looked for .fc, .head, .heads.head, .classifier, .classifier[-1])")


def _batchnorms(model):
    import torch

    for m in model.modules():
        rm = getattr(m, "running_mean", None)
        rv = getattr(m, "running_var", None)
        if isinstance(rm, torch.Tensor) and isinstance(rv, torch.Tensor) and rm.shape == rv.shape:
            yield m


def randomise_batchnorm(model, seed: int, mode: str, input_size) -> int:
    """Give every BatchNorm non-trivial statistics so that BN folding matters.

    random:     running_mean ~ N(0, 0.1), running_var ~ U(0.5, 1.5)
    calibrated: running stats measured on a random batch (train-mode pass), then
                perturbed (mean += N(0, 0.1) * std, var *= U(0.8, 1.25)); keeps
                activations well scaled in deep networks with large init weights
    In both modes the affine parameters become weight ~ U(0.75, 1.25), bias ~ N(0, 0.1).
    """
    import torch

    g = torch.Generator().manual_seed(seed + 12345)
    bns = list(_batchnorms(model))

    def randomise_affine(m):
        c = m.running_mean.shape[0]
        w = getattr(m, "weight", None)
        b = getattr(m, "bias", None)
        if isinstance(w, torch.Tensor) and w.shape == m.running_mean.shape:
            w.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
        if isinstance(b, torch.Tensor) and b.shape == m.running_mean.shape:
            b.copy_(torch.randn(c, generator=g) * 0.1)

    with torch.no_grad():
        if mode == "random":
            for m in bns:
                c = m.running_mean.shape[0]
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                randomise_affine(m)
            return len(bns)

        # calibrated
        for m in bns:
            randomise_affine(m)
        saved = [(m, m.momentum) for m in bns if hasattr(m, "momentum")]
        for m, _ in saved:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration pass
        was_training = model.training
        model.train()
        h, w_ = input_size
        x = torch.randn(8, 3, h, w_, generator=g)
        model(x)
        model.train(was_training)
        for m, mom in saved:
            m.momentum = mom
        for m in bns:
            c = m.running_mean.shape[0]
            std = m.running_var.clamp_min(1e-5).sqrt()
            m.running_mean.add_(torch.randn(c, generator=g) * 0.1 * std)
            m.running_var.mul_(torch.exp(torch.empty(c).uniform_(-0.223, 0.223, generator=g)))
    return len(bns)


def load_weights(model, path: str, allow_pickle: bool, num_classes) -> None:
    import torch

    if not os.path.isfile(path):
        raise ExportError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as e:  # noqa: BLE001 - report any loader failure uniformly
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        msg = re.sub(r"\x1b\[[0-9;]*m", "", msg)
        extra = "" if allow_pickle else (
            " (if this is a trusted checkpoint containing Python objects, retry with --allow-pickle)")
        raise ExportError(f"cannot load weights from {path}: {msg}{extra}")

    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "net"):
            if key in obj and isinstance(obj[key], (dict, torch.nn.Module)):
                obj = obj[key]
                if isinstance(obj, torch.nn.Module):
                    obj = obj.state_dict()
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ExportError(
            f"{path} does not contain a state dict (got {type(obj).__name__}); expected a "
            f"mapping of parameter names to tensors, or a dict with a 'state_dict'/'model' entry")
    state = dict(obj)
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}

    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [(k, tuple(state[k].shape), tuple(own[k].shape))
                  for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        lines = [f"state dict in {path} does not fit the model:"]
        def show(title, items):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(map(str, items[:6]))
                             + (" ..." if len(items) > 6 else ""))
        show("missing keys", missing)
        show("unexpected keys", unexpected)
        show("shape mismatches (file vs model)",
             [f"{k} {a} vs {b}" for k, a, b in mismatched])
        if mismatched:
            k, a, _ = mismatched[-1]
            if len(mismatched) <= 4 and a:
                lines.append(f"  hint: the checkpoint's head has {a[0]} outputs; "
                             f"try --num-classes {a[0]}" if num_classes != a[0] else
                             "  hint: check the architecture name")
        elif missing and unexpected:
            lines.append("  hint: check the architecture name")
        raise ExportError("\n".join(lines))
    model.load_state_dict(state, strict=True)


class SegmentationOutput:
    """Factory for a wrapper that returns only the 'out' tensor of a segmentation model."""

    @staticmethod
    def wrap(model):
        import torch

        class OutOnly(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.model = m

            def forward(self, input):  # noqa: A002 - name becomes the ONNX input name
                return self.model(input)["out"]

        return OutOnly(model)


# --------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------

def flatten_outputs(y):
    import torch

    if isinstance(y, torch.Tensor):
        return [y]
    if isinstance(y, dict):
        return [t for v in y.values() for t in flatten_outputs(v)]
    if isinstance(y, (list, tuple)):
        return [t for v in y for t in flatten_outputs(v)]
    raise ExportError(f"model output of type {type(y).__name__} is not supported")


def export_onnx(model, example, path, exporter, opset, dynamic, output_names, quiet):
    import torch

    dyn_axes = None
    if dynamic:
        dyn_axes = {"input": {0: "batch"}}
        dyn_axes.update({n: {0: "batch"} for n in output_names})
    if exporter == "legacy":
        torch.onnx.export(
            model, (example,), path, dynamo=False, opset_version=opset,
            do_constant_folding=True, input_names=["input"], output_names=output_names,
            dynamic_axes=dyn_axes)
    else:
        kwargs = dict(dynamo=True, opset_version=opset, input_names=["input"],
                      output_names=output_names)
        if dynamic:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
        if quiet:
            kwargs["verbose"] = False
        prog = torch.onnx.export(model, (example,), **kwargs)
        # large models go to external data here; finalize_model() re-inlines when possible
        prog.save(path, external_data=_estimated_size(prog) >= TWO_GB)


def _estimated_size(prog) -> int:
    try:
        return sum(p.numel() * p.element_size() for p in prog.exported_program.state_dict.values())
    except Exception:  # noqa: BLE001
        return 0


def collect_ops(model_proto) -> list[str]:
    import onnx

    ops = set()

    def visit(graph):
        for node in graph.node:
            dom = node.domain
            ops.add(node.op_type if dom in ("", "ai.onnx") else f"{dom}::{node.op_type}")
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        visit(g)

    visit(model_proto.graph)
    local = {(f.domain, f.name) for f in model_proto.functions}
    for f in model_proto.functions:
        for node in f.node:
            if (node.domain, node.op_type) not in local:
                dom = node.domain
                ops.add(node.op_type if dom in ("", "ai.onnx") else f"{dom}::{node.op_type}")
    # calls to local functions are not real ops
    ops -= {name if dom in ("", "ai.onnx") else f"{dom}::{name}" for dom, name in local}
    return sorted(ops)


def finalize_model(tmp_path: str, out_path: str):
    """Load the exported model (with any external data) and write it to out_path,
    inline when it fits in a protobuf (< 2 GB)."""
    import onnx

    m = onnx.load(tmp_path, load_external_data=True)
    if m.ByteSize() < TWO_GB:
        onnx.save_model(m, out_path)
    else:
        loc = os.path.basename(out_path) + ".data"
        onnx.save_model(m, out_path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=loc, size_threshold=1024)
    return onnx.load(out_path, load_external_data=False)


def check_with_onnxruntime(out_dir, batches, n_outputs):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    import numpy as np
    import onnx
    from onnx import numpy_helper

    def read(p):
        t = onnx.TensorProto()
        with open(p, "rb") as f:
            t.ParseFromString(f.read())
        return numpy_helper.to_array(t)

    sess = ort.InferenceSession(os.path.join(out_dir, "model.onnx"),
                                providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    results = []
    for k in range(len(batches)):
        d = os.path.join(out_dir, f"test_data_set_{k}")
        ys = sess.run(None, {in_name: read(os.path.join(d, "input_0.pb"))})
        for j in range(n_outputs):
            ref = read(os.path.join(d, f"output_{j}.pb"))
            err = float(np.max(np.abs(ys[j].astype(np.float64) - ref))) if ref.size else 0.0
            mx = float(np.max(np.abs(ref))) if ref.size else 0.0
            results.append((batches[k], j, err, mx))
    return results


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    if args.quiet:
        warnings.filterwarnings("ignore")
        import logging
        logging.disable(logging.WARNING)

    import torch

    if args.list:
        fams, _ = model_families()
        for fam in ("classification", "segmentation"):
            print(f"{fam}:")
            print("  " + " ".join(sorted(n for n, (f, _) in fams.items() if f == fam)))
        return 0

    if not args.arch:
        build_parser().error("the architecture name is required (use --list to see them)")
    opset = args.opset if args.opset is not None else DEFAULT_OPSET[args.exporter]
    dynamic = args.dynamic_batch or len(args.batches) > 1
    out_dir = args.out or args.arch
    h, w = args.input_size

    torch.manual_seed(args.seed)
    model, family, qualname = build_model(args.arch)
    head_note = ""
    if args.num_classes is not None:
        replaced = replace_head(model, family, args.num_classes)
        head_note = f" with {args.num_classes}-class head"
        if not args.quiet:
            print(f"replaced {replaced} with a {args.num_classes}-output layer")
    if args.weights:
        load_weights(model, args.weights, args.allow_pickle, args.num_classes)
        provenance = f"weights from {os.path.basename(args.weights)}"
    else:
        n_bn = randomise_batchnorm(model, args.seed, args.bn_stats, args.input_size)
        provenance = f"random weights, seed {args.seed}"
        if n_bn:
            provenance += ("; BN stats randomised" if args.bn_stats == "random"
                           else "; BN stats calibrated on random input, then randomised")
    model.eval()
    if family == "segmentation":
        model = SegmentationOutput.wrap(model).eval()

    # inputs and PyTorch references
    g = torch.Generator().manual_seed(args.seed)
    inputs = [torch.randn(b, 3, h, w, generator=g, dtype=torch.float32) for b in args.batches]
    refs = []
    with torch.no_grad():
        for x in inputs:
            try:
                refs.append([t.detach().float().contiguous() for t in flatten_outputs(model(x))])
            except ExportError:
                raise
            except Exception as e:  # noqa: BLE001
                raise ExportError(f"{args.arch} failed on a {tuple(x.shape)} input: {e}")
    n_out = len(refs[0])
    output_names = ["output"] if n_out == 1 else [f"output_{j}" for j in range(n_out)]

    # export: with a dynamic batch, trace with batch >= 2 so the dimension is not specialised
    example = inputs[-1] if not dynamic else max(inputs, key=lambda t: t.shape[0])
    if dynamic and example.shape[0] < 2:
        example = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(args.seed + 1))

    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        p = os.path.join(out_dir, name)
        if name.startswith("test_data_set_") and os.path.isdir(p):
            shutil.rmtree(p)
        elif name in ("model.onnx", "model.onnx.data", "meta.json"):
            os.remove(p)

    with tempfile.TemporaryDirectory(prefix="export_tv_") as tmp:
        tmp_path = os.path.join(tmp, "model.onnx")
        try:
            with torch.no_grad():
                export_onnx(model, example, tmp_path, args.exporter, opset, dynamic,
                            output_names, args.quiet)
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"ONNX export ({args.exporter}, opset {opset}) failed: "
                              f"{type(e).__name__}: {first}")
        model_proto = finalize_model(tmp_path, os.path.join(out_dir, "model.onnx"))

    from onnx import numpy_helper

    for k, (x, ys) in enumerate(zip(inputs, refs)):
        d = os.path.join(out_dir, f"test_data_set_{k}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "input_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(x.numpy(), "input").SerializeToString())
        for j, y in enumerate(ys):
            with open(os.path.join(d, f"output_{j}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(y.numpy(), output_names[j]).SerializeToString())

    ops = collect_ops(model_proto)
    actual_opset = next((o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx")),
                        opset)
    import torchvision

    meta = {
        "source": f"{qualname}{head_note} ({provenance})",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "exporter": "dynamo" if args.exporter == "dynamo" else "legacy (dynamo=False)",
        "opset": actual_opset,
        "ops": ops,
        "batches": args.batches,
        "tolerance": TOLERANCE,
    }
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        f.write(json.dumps(meta, indent=1))

    size = os.path.getsize(os.path.join(out_dir, "model.onnx"))
    in_shape = ["batch" if dynamic else args.batches[0], 3, h, w]
    print(f"wrote {out_dir}/model.onnx ({size / 1e6:.1f} MB, {meta['exporter']}, opset {actual_opset})")
    print(f"  input  : input {in_shape} float32")
    for j, name in enumerate(output_names):
        shapes = ", ".join(str(list(r[j].shape)) for r in refs)
        print(f"  output : {name} {shapes}")
    print(f"  batches: {args.batches} -> test_data_set_0..{len(args.batches) - 1}")
    print(f"  ops    : {' '.join(ops)}")

    if not args.no_check:
        res = check_with_onnxruntime(out_dir, args.batches, n_out)
        if res is not None:
            bad = False
            for b, j, err, mx in res:
                ok = err <= 1e-4 * mx
                bad |= not ok
                print(f"  onnxruntime batch {b} output {j}: max|y-ref| = {err:.3g}, "
                      f"max|ref| = {mx:.3g} {'ok' if ok else 'EXCEEDS fp32 tolerance'}")
            if bad:
                print("warning: onnxruntime disagrees with PyTorch beyond the fp32 tolerance",
                      file=sys.stderr)
                return 3
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
