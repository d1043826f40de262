#!/usr/bin/env python3
"""Write small single-op cases whose reference outputs come from ONNX Runtime.

For operators whose ONNX node cases are few (GatherND has three), these add
shapes and attributes the suite leaves out. Each case is a directory in the
ONNX backend-test layout (model.onnx, test_data_set_0/input_*.pb and
output_0.pb) under models/ort_cases/, checked by
engine-builder/tests/cli.rs with `engine-builder test`.

Usage: python3 scripts/make_ort_cases.py [--out models/ort_cases]
(needs numpy, onnx and onnxruntime; the inputs are seeded).
"""
import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

# (name, data dims, indices dims, batch_dims) for GatherND.
GATHER_ND = [
    ("negative_indices", (4, 5, 6), (3, 2), 0),
    ("full_tuples", (4, 5, 6), (2, 3, 3), 0),
    ("batch_dims_2", (2, 3, 4, 5), (2, 3, 2, 1), 2),
    ("one_tuple", (4, 5), (2,), 0),
    ("batch_dims_1_pairs", (3, 4, 5, 2), (3, 6, 2), 1),
]


def gather_nd_case(out: Path, rng, name, dd, idd, b):
    data = rng.standard_normal(dd).astype(np.float32)
    k = idd[-1]
    # Every index in range, negative ones included.
    idx = np.stack([rng.integers(-d, d, size=idd[:-1]) for d in dd[b:b + k]],
                   axis=-1).astype(np.int64)
    node = helper.make_node("GatherND", ["data", "indices"], ["y"], batch_dims=b)
    graph = helper.make_graph(
        [node], f"gathernd_{name}",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, dd),
         helper.make_tensor_value_info("indices", TensorProto.INT64, idd)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (y,) = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(
        None, {"data": data, "indices": idx})
    d = out / f"test_gathernd_{name}"
    (d / "test_data_set_0").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(d / "model.onnx"))
    for i, (n, a) in enumerate([("data", data), ("indices", idx)]):
        (d / "test_data_set_0" / f"input_{i}.pb").write_bytes(
            numpy_helper.from_array(a, n).SerializeToString())
    (d / "test_data_set_0" / "output_0.pb").write_bytes(
        numpy_helper.from_array(y, "y").SerializeToString())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent.parent / "models" / "ort_cases")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    for case in GATHER_ND:
        gather_nd_case(a.out, rng, *case)
    print(f"wrote {len(GATHER_ND)} cases to {a.out} (onnxruntime {ort.__version__})")


if __name__ == "__main__":
    main()
