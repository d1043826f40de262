#!/usr/bin/env python3
"""Train and export a tiny shape classifier: the bundled jetrt demo model.

A small CNN is trained on CPU, in well under a minute, on a synthetic data set
of 64x64 RGB images of simple shapes (circle, square, triangle, cross) with
random position, size, rotation, colours and a little noise.  It is exported
to ONNX with the dynamo exporter and written, together with everything needed
to run and check it, to::

    OUT/
      model.onnx                  1x3x64x64 float32 'input' -> 1x4 'logits' (weights inline)
      labels.txt                  class names, one a line, in logit order
      meta.json                   provenance, op list, tolerances, preprocessing, accuracy
      test_data_set_0/
        input_0.pb                one preprocessed held-out image (onnx TensorProto)
        output_0.pb               PyTorch float32 logits for it
      images/
        circle.png square.png triangle.png cross.png
                                  96x96 sample images, one per class

Preprocessing expected by the model: RGB channel order, CHW layout, pixel
values scaled to [0, 1] then normalised with mean 0.5 and std 0.25 for every
channel, i.e. ``x = (pixel / 255 - 0.5) / 0.25``.  The sample images are
96x96 so that a consumer has to resize them (bilinear) to 64x64.

Everything is deterministic given ``--seed``.

Examples::

    python3 scripts/make_tiny_model.py                  # writes models/tiny
    python3 scripts/make_tiny_model.py --out /tmp/tiny --seed 1 --epochs 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parent.parent

CLASSES = ("circle", "square", "triangle", "cross")
INPUT_SIZE = 64            # model input height and width
SAMPLE_SIZE = 96           # size of the bundled sample PNGs
SUPERSAMPLE = 4            # shapes are drawn at this factor then downsampled (anti-aliasing)
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
OPSET = 20
TOLERANCE = {
    "fp32": "max|y-ref| <= 1e-4 * max|ref|",
    "fp16": "max|y-ref| <= 2e-2 * max|ref| and same argmax",
}


# --------------------------------------------------------------------------
# synthetic shapes
# --------------------------------------------------------------------------

def random_params(rng: np.random.Generator) -> dict:
    """Draw random shape parameters, in coordinates relative to the image size.

    r is the shape's half-extent (circle radius, half the side of the square,
    circumradius of the triangle, half the span of the cross).
    """
    r = rng.uniform(0.15, 0.38)
    margin = r + 0.02
    while True:
        fg = rng.integers(0, 256, size=3)
        bg = rng.integers(0, 256, size=3)
        if np.linalg.norm(fg.astype(float) - bg) >= 100:  # keep the shape visible
            break
    return {
        "cx": rng.uniform(margin, 1 - margin),
        "cy": rng.uniform(margin, 1 - margin),
        "r": r,
        "angle": rng.uniform(-20, 20),
        "fg": tuple(int(c) for c in fg),
        "bg": tuple(int(c) for c in bg),
        "noise": rng.uniform(0.0, 0.04),
    }


def _polygon(cls: str, cx: float, cy: float, r: float, angle_deg: float) -> list[tuple[float, float]]:
    if cls == "square":
        s = r * 0.85
        pts = [(-s, -s), (s, -s), (s, s), (-s, s)]
    elif cls == "triangle":
        # equilateral, pointing up, centred on its circumcentre
        pts = [(r * math.sin(2 * math.pi * k / 3), -r * math.cos(2 * math.pi * k / 3))
               for k in range(3)]
    elif cls == "cross":
        a, t = r, r * 0.3  # arm half-length, arm half-thickness
        pts = [(-t, -a), (t, -a), (t, -t), (a, -t), (a, t), (t, t),
               (t, a), (-t, a), (-t, t), (-a, t), (-a, -t), (-t, -t)]
    else:
        raise ValueError(f"not a polygon class: {cls}")
    c, s_ = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return [(cx + x * c - y * s_, cy + x * s_ + y * c) for x, y in pts]


def render(cls: str, params: dict, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render one shape as a size x size x 3 uint8 RGB array.

    Noise (Gaussian, std params['noise'] of full scale) is only added when an
    rng is given.
    """
    big = size * SUPERSAMPLE
    img = Image.new("RGB", (big, big), params["bg"])
    draw = ImageDraw.Draw(img)
    cx, cy, r = params["cx"] * big, params["cy"] * big, params["r"] * big
    if cls == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=params["fg"])
    else:
        draw.polygon(_polygon(cls, cx, cy, r, params["angle"]), fill=params["fg"])
    arr = np.asarray(img.resize((size, size), Image.BOX), dtype=np.float32)
    if rng is not None and params["noise"] > 0:
        arr = arr + rng.normal(0.0, params["noise"] * 255.0, size=arr.shape)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def make_dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images (n x 64 x 64 x 3 uint8) with balanced labels, deterministic in seed."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    rng.shuffle(labels)
    images = np.empty((n, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    for i, y in enumerate(labels):
        images[i] = render(CLASSES[y], random_params(rng), INPUT_SIZE, rng)
    return images, labels.astype(np.int64)


def preprocess(images: np.ndarray) -> np.ndarray:
    """N x H x W x 3 uint8 RGB -> N x 3 x H x W float32, normalised."""
    x = images.astype(np.float32) / 255.0
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# hand-picked, clearly visible sample images (same renderer, larger and centred)
SAMPLES = {
    "circle":   {"cx": 0.48, "cy": 0.52, "r": 0.33, "angle": 0.0,
                 "fg": (220, 60, 50), "bg": (235, 230, 210), "noise": 0.0},
    "square":   {"cx": 0.53, "cy": 0.47, "r": 0.32, "angle": 10.0,
                 "fg": (40, 90, 200), "bg": (250, 210, 120), "noise": 0.0},
    "triangle": {"cx": 0.50, "cy": 0.55, "r": 0.38, "angle": -5.0,
                 "fg": (30, 150, 70), "bg": (225, 225, 240), "noise": 0.0},
    "cross":    {"cx": 0.50, "cy": 0.50, "r": 0.35, "angle": 0.0,
                 "fg": (250, 250, 250), "bg": (90, 40, 130), "noise": 0.0},
}


# --------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------

def build_model():
    import torch
    import torch.nn as nn

    class TinyShapeNet(nn.Module):
        def __init__(self, num_classes: int = len(CLASSES)):
            super().__init__()

            def block(cin, cout):
                return [nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                        nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

            self.features = nn.Sequential(
                *block(3, 8), nn.MaxPool2d(2),
                *block(8, 16), nn.MaxPool2d(2),
                *block(16, 24), nn.MaxPool2d(2),
                *block(24, 32),
            )
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(32, num_classes)

        def forward(self, x):
            x = self.pool(self.features(x))
            return self.fc(torch.flatten(x, 1))

    return TinyShapeNet()


def train(model, x, y, epochs: int, seed: int, batch_size: int = 64) -> None:
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(xb)
            correct += (logits.argmax(1) == yb).sum().item()
            total += len(xb)
        print(f"  epoch {epoch + 1:2d}/{epochs}: loss {loss_sum / total:.4f}, "
              f"train acc {correct / total:.4f}")


def evaluate(model, x, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)])
    return (pred == y).float().mean().item()


# --------------------------------------------------------------------------
# export and checks
# --------------------------------------------------------------------------

def export(model, example, path: Path) -> list[str]:
    """Export with the dynamo exporter, re-save with weights inline; returns the sorted op types."""
    import onnx
    import torch

    with tempfile.TemporaryDirectory(prefix="tiny_export_") as tmp:
        tmp_path = os.path.join(tmp, "model.onnx")
        torch.onnx.export(model.eval(), (example,), tmp_path, dynamo=True,
                          input_names=["input"], output_names=["logits"],
                          opset_version=OPSET, verbose=False)
        proto = onnx.load(tmp_path, load_external_data=True)
    # drop the exporter's per-node debugging metadata (source stack traces, FX node
    # dumps): it is a third of the file and records local paths
    for item in list(proto.graph.node) + list(proto.graph.initializer):
        del item.metadata_props[:]
        item.doc_string = ""
    onnx.save_model(proto, str(path), save_as_external_data=False)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    return sorted({n.op_type for n in proto.graph.node})


def write_tensor(path: Path, arr: np.ndarray, name: str) -> None:
    from onnx import numpy_helper

    path.write_bytes(numpy_helper.from_array(np.ascontiguousarray(arr), name).SerializeToString())


def read_tensor(path: Path) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train a tiny CNN on synthetic 64x64 shape images (circle, square, "
                    "triangle, cross) and export it, with labels, metadata, a reference "
                    "test data set and sample images, as a ready-to-run demo model.")
    p.add_argument("--out", default=str(REPO_ROOT / "models" / "tiny"), metavar="DIR",
                   help="output directory (default: models/tiny in the repository); "
                        "files it generates are replaced")
    p.add_argument("--seed", type=int, default=0, help="random seed for data and training (default: 0)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default: 8)")
    p.add_argument("--train-size", type=int, default=4000, help="training images (default: 4000)")
    p.add_argument("--test-size", type=int, default=1000, help="held-out test images (default: 1000)")
    p.add_argument("--min-accuracy", type=float, default=0.95,
                   help="fail if held-out accuracy is below this (default: 0.95)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import warnings
    import logging
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    import onnxruntime as ort
    import torch
    import torchvision

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    out = Path(args.out)

    # data
    t0 = time.perf_counter()
    train_img, train_y = make_dataset(args.train_size, args.seed)
    test_img, test_y = make_dataset(args.test_size, args.seed + 1_000_003)
    x_train, y_train = torch.from_numpy(preprocess(train_img)), torch.from_numpy(train_y)
    x_test, y_test = torch.from_numpy(preprocess(test_img)), torch.from_numpy(test_y)
    print(f"generated {len(train_y)} training and {len(test_y)} test images "
          f"in {time.perf_counter() - t0:.1f} s")

    # training
    model = build_model()
    t0 = time.perf_counter()
    train(model, x_train, y_train, args.epochs, args.seed)
    train_s = time.perf_counter() - t0
    acc = evaluate(model, x_test, y_test)
    print(f"trained in {train_s:.1f} s; held-out accuracy {acc:.4f} ({len(y_test)} images)")
    if acc < args.min_accuracy:
        print(f"error: accuracy {acc:.4f} is below {args.min_accuracy}; try more --epochs",
              file=sys.stderr)
        return 1
    model.eval()

    # output directory
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", "labels.txt", "meta.json"):
        (out / name).unlink(missing_ok=True)
    for name in ("test_data_set_0", "images"):
        shutil.rmtree(out / name, ignore_errors=True)

    # model
    example = x_test[:1].clone()
    ops = export(model, example, out / "model.onnx")
    (out / "labels.txt").write_text("".join(c + "\n" for c in CLASSES))

    # reference data set: the first held-out image
    with torch.no_grad():
        ref = model(example).numpy()
    ds = out / "test_data_set_0"
    ds.mkdir()
    write_tensor(ds / "input_0.pb", example.numpy(), "input")
    write_tensor(ds / "output_0.pb", ref, "logits")

    # sample images, checked with PyTorch after a bilinear resize to the input size
    img_dir = out / "images"
    img_dir.mkdir()
    print("sample images (96x96, bilinear-resized to 64x64):")
    ok = True
    for cls in CLASSES:
        path = img_dir / f"{cls}.png"
        Image.fromarray(render(cls, SAMPLES[cls], SAMPLE_SIZE)).save(path, optimize=True)
        small = Image.open(path).convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR)
        x = torch.from_numpy(preprocess(np.asarray(small)[None]))
        with torch.no_grad():
            prob = softmax(model(x).numpy())[0]
        pred = CLASSES[int(prob.argmax())]
        ok &= pred == cls
        print(f"  {path.name:13s} -> {pred:8s} p={prob.max():.4f}  "
              f"[{' '.join(f'{p:.3f}' for p in prob)}]  {path.stat().st_size} B"
              + ("" if pred == cls else "  MISCLASSIFIED"))

    # metadata
    meta = {
        "source": (f"scripts/make_tiny_model.py: tiny CNN (4x Conv3x3+BN+ReLU with 8/16/24/32 "
                   f"channels, 3x MaxPool, global average pool, Linear 32->4) trained from scratch on synthetic 64x64 "
                   f"shape images ({', '.join(CLASSES)}), seed {args.seed}, {args.epochs} epochs"),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "exporter": "dynamo",
        "opset": OPSET,
        "ops": ops,
        "batches": [1],
        "tolerance": TOLERANCE,
        "input_size": [INPUT_SIZE, INPUT_SIZE],
        "mean": list(MEAN),
        "std": list(STD),
        "color": "rgb",
        "accuracy": round(acc, 4),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")

    # onnxruntime check against the reference output
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": read_tensor(ds / "input_0.pb")})[0]
    ref_pb = read_tensor(ds / "output_0.pb")
    err = float(np.max(np.abs(y.astype(np.float64) - ref_pb)))
    mx = float(np.max(np.abs(ref_pb)))
    within = err <= 1e-4 * mx
    print(f"onnxruntime: max|y-ref| = {err:.3g} (max|ref| = {mx:.3g}) "
          f"{'ok' if within else 'EXCEEDS fp32 tolerance'}")

    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({total / 1024:.1f} KiB): model.onnx "
          f"{(out / 'model.onnx').stat().st_size / 1024:.1f} KiB, opset {OPSET}, ops {' '.join(ops)}")
    if not ok:
        print("error: a sample image was misclassified", file=sys.stderr)
        return 1
    return 0 if within else 3


if __name__ == "__main__":
    sys.exit(main())
