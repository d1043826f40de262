//! Helpers for the engine-builder end-to-end tests: running the real
//! binary, and writing small ONNX models and tensors as files.
#![allow(dead_code)]

use engine_builder::onnx::proto::{
    tensor_shape_proto::{dimension::Value as DimValue, Dimension},
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn tiny() -> PathBuf {
    repo().join("models/tiny")
}

/// Runs engine-builder; returns (exit code, stdout, stderr).
pub fn eb(args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_engine-builder"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("engine-builder runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs engine-builder and insists on a clean user error: exit 1, an
/// `error:` line, never a panic.
pub fn eb_fails(args: &[&str]) -> String {
    let (code, out, err) = eb(args);
    assert_eq!(
        code, 1,
        "expected exit 1 for {args:?}\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        err.starts_with("error: "),
        "no error line for {args:?}: {err}"
    );
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    err
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub enum D {
    N(i64),
    P(&'static str),
}

pub fn value_info(name: &str, elem: i32, dims: &[D]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                D::N(n) => DimValue::DimValue(*n),
                                D::P(p) => DimValue::DimParam(p.to_string()),
                            }),
                            denotation: String::new(),
                        })
                        .collect(),
                }),
            })),
            denotation: String::new(),
        }),
    }
}

pub fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_{}", outputs.first().unwrap_or(&"")),
        op_type: op.into(),
        domain: String::new(),
        attribute: attrs,
    }
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn f32_init(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: v.to_vec(),
        ..Default::default()
    }
}

pub fn model_bytes(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
    opset: i64,
) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        producer_name: "jetrt-tests".into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "test".into(),
            initializer: inits,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}
