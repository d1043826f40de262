//! The Plugin layer: TensorRT's `addPluginV3`. A plugin is an op implemented
//! outside the IR, through jetrt's plugin C ABI (`plugins-cpp/`); the layer
//! names it, keeps the fields it was created from, its serialized
//! parameters (what it is re-created from when an engine is loaded), and
//! its output types, so that the network can be checked and inspected
//! without the plugin at hand.

use super::TensorInfo;
use crate::dtype::DataType;
use crate::shape::Dim;
use serde::{Deserialize, Serialize};

/// Flattened into its layer's JSON, so keys that a layer has too (`name`,
/// `outputs`) are renamed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginParams {
    #[serde(rename = "plugin")]
    pub name: String,
    #[serde(rename = "plugin_version")]
    pub version: String,
    /// The fields the plugin was created from (an ONNX node's attributes).
    pub fields: Vec<PluginField>,
    /// The plugin's serialized parameters, hex in the engine file.
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
    /// File name of the library that provided the plugin when the engine
    /// was built; `None` for jetrt's built-in plugins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// Output types as the plugin inferred them at build time.
    #[serde(rename = "plugin_outputs")]
    pub outputs: Vec<PluginOutput>,
}

impl PluginParams {
    /// `Name` version `1` (from libfoo.so), for messages.
    pub fn describe(&self) -> String {
        match &self.library {
            Some(l) => format!("'{}' version {} (from {l})", self.name, self.version),
            None => format!("'{}' version {} (built in)", self.name, self.version),
        }
    }
}

/// A typed plugin parameter, as TensorRT's `PluginField`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginField {
    pub name: String,
    #[serde(flatten)]
    pub value: FieldValue,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum FieldValue {
    Int(i64),
    Float(#[serde(with = "super::nonfinite::f64")] f64),
    String(String),
    Ints(Vec<i64>),
    Floats(#[serde(with = "super::nonfinite::f64_vec")] Vec<f64>),
}

/// One output of a plugin layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginOutput {
    pub dtype: DataType,
    pub dims: Vec<PluginDim>,
}

/// An output dim as the plugin described it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginDim {
    /// Always this size.
    Known(usize),
    /// Always dim `axis` of input `input` (a dynamic batch keeps its name).
    SameAs { input: usize, axis: usize },
    /// Computed from the input dims when they are known (at run time).
    Unknown,
    /// Known only once the kernel has run, at most `bound` when that could
    /// be computed at build time (NonMaxSuppression's selected count).
    DataDependent { bound: Option<usize> },
}

/// Output types of a plugin layer reading `inputs`: the recorded outputs
/// with dims taken from the inputs where the plugin said so.
pub fn plugin_outputs(inputs: &[&TensorInfo], p: &PluginParams) -> Result<Vec<TensorInfo>, String> {
    p.outputs
        .iter()
        .enumerate()
        .map(|(k, o)| {
            let dims = o
                .dims
                .iter()
                .map(|d| match d {
                    PluginDim::Known(n) => Ok(Dim::Known(*n)),
                    PluginDim::SameAs { input, axis } => inputs
                        .get(*input)
                        .and_then(|i| i.shape.get(*axis))
                        .cloned()
                        .ok_or_else(|| {
                            format!("output {k} refers to dim {axis} of input {input}, which does not exist")
                        }),
                    PluginDim::Unknown | PluginDim::DataDependent { .. } => Ok(Dim::Unknown),
                })
                .collect::<Result<Vec<Dim>, String>>()?;
            Ok(TensorInfo::new(o.dtype, dims))
        })
        .collect()
}

/// Bytes as a lowercase hex string: parameters stay readable in the
/// engine's JSON and cost two characters a byte.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = v.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = text.as_bytes();
        if bytes.len() % 2 != 0 {
            return Err(serde::de::Error::custom("hex data has an odd length"));
        }
        bytes
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("hex data holds a non-hex character"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PluginParams {
        PluginParams {
            name: "Foo".into(),
            version: "1".into(),
            fields: vec![
                PluginField {
                    name: "alpha".into(),
                    value: FieldValue::Float(f64::INFINITY),
                },
                PluginField {
                    name: "mode".into(),
                    value: FieldValue::String("x".into()),
                },
                PluginField {
                    name: "list".into(),
                    value: FieldValue::Floats(vec![1.5, f64::NAN]),
                },
            ],
            data: vec![0, 1, 0xab, 0xff],
            library: Some("libfoo.so".into()),
            outputs: vec![PluginOutput {
                dtype: DataType::I64,
                dims: vec![
                    PluginDim::DataDependent { bound: Some(6) },
                    PluginDim::Known(3),
                    PluginDim::SameAs { input: 0, axis: 0 },
                ],
            }],
        }
    }

    #[test]
    fn params_round_trip_through_json() {
        let p = sample();
        let j = serde_json::to_string(&p).unwrap();
        assert!(j.contains("\"0001abff\""), "{j}");
        let back: PluginParams = serde_json::from_str(&j).unwrap();
        assert_eq!(back.data, p.data);
        assert_eq!(back.outputs, p.outputs);
        assert!(matches!(&back.fields[2].value, FieldValue::Floats(v) if v[1].is_nan()));
        let bad = j.replace("0001abff", "0001abf");
        assert!(serde_json::from_str::<PluginParams>(&bad).is_err());
        let bad = j.replace("0001abff", "0001abzz");
        assert!(serde_json::from_str::<PluginParams>(&bad).is_err());
    }

    #[test]
    fn plugin_layers_round_trip_through_json() {
        let layer = super::super::Layer {
            name: "nms".into(),
            kind: super::super::LayerKind::Plugin(sample()),
            inputs: vec![super::super::TensorRef::Input(0)],
            outputs: vec![TensorInfo::new(
                DataType::I64,
                vec![Dim::Unknown, Dim::Known(3)],
            )],
        };
        let j = serde_json::to_string(&layer).unwrap();
        let back: super::super::Layer = serde_json::from_str(&j).unwrap();
        assert_eq!(back.name, layer.name);
        assert_eq!(back.outputs, layer.outputs);
        let super::super::LayerKind::Plugin(p) = back.kind else {
            panic!("not a plugin layer: {j}")
        };
        assert_eq!(p.name, "Foo");
        assert_eq!(p.outputs, sample().outputs);
    }

    #[test]
    fn outputs_take_input_dims() {
        let p = sample();
        let x = TensorInfo::new(
            DataType::F32,
            vec![Dim::Named("batch".into()), Dim::Known(4)],
        );
        let out = plugin_outputs(&[&x], &p).unwrap();
        assert_eq!(
            out[0].shape,
            vec![Dim::Unknown, Dim::Known(3), Dim::Named("batch".into())]
        );
        assert!(plugin_outputs(&[], &p).is_err());
    }
}
