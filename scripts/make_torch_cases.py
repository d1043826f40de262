#!/usr/bin/env python3
"""Write small models exported by PyTorch with PyTorch's outputs as references.

Each case is a directory in the ONNX backend-test layout (model.onnx,
test_data_set_0/input_0.pb and output_0.pb) under models/torch_cases/,
checked by engine-builder/tests/cli.rs with `engine-builder test`. Random
weights and inputs, seeded; the legacy exporter at opset 17.

  lstm2_batch_first  a 2-layer LSTM (batch first, 8 inputs, 16 hidden) over
                     12 steps of a batch of 3, then a Linear on every step
  gru_bidirectional  a 1-layer bidirectional GRU (time major) of 12 hidden

Usage: python3 scripts/make_torch_cases.py [--out models/torch_cases]
(needs torch, numpy and onnx).
"""
import argparse
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper


class Lstm2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y)


class Gru(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(6, 12, bidirectional=True)

    def forward(self, x):
        y, h = self.gru(x)
        return y


CASES = [
    ("lstm2_batch_first", Lstm2, (3, 12, 8)),
    ("gru_bidirectional", Gru, (10, 2, 6)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "models" / "torch_cases")
    a = ap.parse_args()
    torch.manual_seed(0)
    for name, make, dims in CASES:
        model = make().eval()
        x = torch.randn(*dims)
        with torch.no_grad():
            y = model(x)
        d = a.out / name
        (d / "test_data_set_0").mkdir(parents=True, exist_ok=True)
        torch.onnx.export(model, x, str(d / "model.onnx"), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
        onnx.checker.check_model(onnx.load(str(d / "model.onnx")))
        for kind, t in (("input", x), ("output", y)):
            p = numpy_helper.from_array(t.numpy().astype(np.float32), name="x" if kind == "input" else "y")
            (d / "test_data_set_0" / f"{kind}_0.pb").write_bytes(p.SerializeToString())
        print(f"{name}: {tuple(x.shape)} -> {tuple(y.shape)}")


if __name__ == "__main__":
    main()
