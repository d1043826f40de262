//! The `.engine` file: one self-describing, versioned, checksummed file.
//!
//! ```text
//! 0      magic "JETRTENG"
//! 8      format version (u32 LE)
//! 12     section count (u32 LE)
//! 16     file length (u64 LE)
//! 24     section table: per section {kind u32, reserved u32, offset u64, length u64}
//! ...    sections, each starting on a 64-byte boundary
//! end-8  CRC-32 of every byte before it (u32 LE), then "JEND"
//! ```
//! Sections: a JSON header, the network as JSON with an index into the
//! weights section, the weights (raw little-endian, 64-byte aligned), and any
//! number of backend plans, each a JSON key and opaque bytes. Every offset and
//! length is checked before use; nothing here panics on a bad file.

use crate::dtype::DataType;
use crate::ir::Network;
use crate::shape::{format_dims, volume, Profile, Shape};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const MAGIC: &[u8; 8] = b"JETRTENG";
const TRAILER: &[u8; 4] = b"JEND";
/// The format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
const FIXED_HEADER: usize = 24;
const SECTION_ENTRY: usize = 24;
const MAX_SECTIONS: usize = 256;
const ALIGN: usize = 64;

const SECTION_HEADER: u32 = 1;
const SECTION_NETWORK: u32 = 2;
const SECTION_WEIGHTS: u32 = 3;
const SECTION_PLAN: u32 = 4;

/// What the engine is and how it was built; the part `inspect` shows first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineHeader {
    pub name: String,
    /// `jetrt <version>`.
    pub producer: String,
    /// SHA-256 of the model file the engine was built from.
    pub source_hash: String,
    pub build: BuildRecord,
    pub inputs: Vec<IoDesc>,
    pub outputs: Vec<IoDesc>,
    #[serde(default)]
    pub preprocess: Option<Preprocess>,
    #[serde(default)]
    pub labels: Vec<String>,
    /// The plugins the engine's layers use; each must be registered (built
    /// in, or from a loaded library) for the engine to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginRequirement>,
}

/// A plugin an engine needs, and where it came from when the engine was built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRequirement {
    pub name: String,
    pub version: String,
    /// The library's file name; `None` for a built-in plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
}

impl PluginRequirement {
    /// The distinct plugins a network's layers use, in layer order.
    pub fn of_network(net: &Network) -> Vec<PluginRequirement> {
        let mut v: Vec<PluginRequirement> = Vec::new();
        for l in &net.layers {
            if let crate::ir::LayerKind::Plugin(p) = &l.kind {
                let r = PluginRequirement {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    library: p.library.clone(),
                };
                if !v.contains(&r) {
                    v.push(r);
                }
            }
        }
        v
    }
}

/// The build options an engine was made with (what a cache key needs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub backend: String,
    /// `fp32` or `fp16`.
    pub precision: String,
    /// The batch profile given, `MIN:OPT:MAX`.
    pub batch: String,
    /// `NAME=DIMS` overrides given.
    #[serde(default)]
    pub shapes: Vec<String>,
    /// Plugin libraries (file names) the engine needs at load time: those
    /// that provided a plugin its layers use.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// The per-layer scratch limit given (`--workspace`), in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IoDesc {
    pub name: String,
    pub dtype: DataType,
    pub shape: Shape,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

/// How to turn an image into the engine's input: recorded by
/// `engine-builder build --input-size/--mean/--std/--color`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// `[height, width]`; `None` takes the input's dims.
    pub input_size: Option<[usize; 2]>,
    /// Per channel, on pixel values scaled to 0..1.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub color: ColorOrder,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            input_size: None,
            mean: [0.0; 3],
            std: [1.0; 3],
            color: ColorOrder::Rgb,
        }
    }
}

/// Identifies what a backend plan was built for; a plan whose key does not
/// match the running backend is rebuilt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanKey {
    pub backend: String,
    pub device: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub key: PlanKey,
    pub data: Vec<u8>,
}

/// Everything an engine file holds.
#[derive(Clone, Debug)]
pub struct EngineData {
    pub header: EngineHeader,
    pub network: Arc<Network>,
    pub plans: Vec<Plan>,
}

#[derive(Serialize, Deserialize)]
struct WeightsEntry {
    dtype: DataType,
    shape: Vec<usize>,
    offset: u64,
    len: u64,
}

#[derive(Serialize, Deserialize)]
struct NetworkSection {
    network: Network,
    weights: Vec<WeightsEntry>,
}

fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Serializes an engine into the file format.
pub fn encode(e: &EngineData) -> Vec<u8> {
    let mut weights = Vec::new();
    let mut index = Vec::with_capacity(e.network.weights.len());
    for w in &e.network.weights {
        let start = align_up(weights.len());
        weights.resize(start, 0);
        let bytes = w.to_le_bytes();
        index.push(WeightsEntry {
            dtype: w.dtype(),
            shape: w.shape().to_vec(),
            offset: start as u64,
            len: bytes.len() as u64,
        });
        weights.extend_from_slice(&bytes);
    }
    let header = serde_json::to_vec(&e.header).expect("header serializes");
    let network = serde_json::to_vec(&NetworkSection {
        network: (*e.network).clone(),
        weights: index,
    })
    .expect("network serializes");
    let mut sections: Vec<(u32, Vec<u8>)> = vec![
        (SECTION_HEADER, header),
        (SECTION_NETWORK, network),
        (SECTION_WEIGHTS, weights),
    ];
    for p in &e.plans {
        let key = serde_json::to_vec(&p.key).expect("plan key serializes");
        let mut body = (key.len() as u32).to_le_bytes().to_vec();
        body.extend_from_slice(&key);
        body.extend_from_slice(&p.data);
        sections.push((SECTION_PLAN, body));
    }

    let table_end = FIXED_HEADER + SECTION_ENTRY * sections.len();
    let mut offsets = Vec::new();
    let mut pos = align_up(table_end);
    for (_, body) in &sections {
        offsets.push(pos);
        pos = align_up(pos + body.len());
    }
    let file_len = pos + 8;
    let mut out = vec![0u8; file_len];
    out[0..8].copy_from_slice(MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&(sections.len() as u32).to_le_bytes());
    out[16..24].copy_from_slice(&(file_len as u64).to_le_bytes());
    for (i, ((kind, body), off)) in sections.iter().zip(&offsets).enumerate() {
        let e = FIXED_HEADER + i * SECTION_ENTRY;
        out[e..e + 4].copy_from_slice(&kind.to_le_bytes());
        out[e + 8..e + 16].copy_from_slice(&(*off as u64).to_le_bytes());
        out[e + 16..e + 24].copy_from_slice(&(body.len() as u64).to_le_bytes());
        out[*off..*off + body.len()].copy_from_slice(body);
    }
    let crc = crc32fast::hash(&out[..file_len - 8]);
    out[file_len - 8..file_len - 4].copy_from_slice(&crc.to_le_bytes());
    out[file_len - 4..].copy_from_slice(TRAILER);
    out
}

/// Why a file could not be decoded; the caller adds the path.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

const REBUILD: &str = "rebuild it with `engine-builder build`";

/// Decodes and validates an engine file's bytes.
pub fn decode(b: &[u8]) -> Result<EngineData, DecodeError> {
    let n = MAGIC.len().min(b.len());
    if b[..n] != MAGIC[..n] {
        return err(
            "not a jetrt engine file (bad magic bytes); build one with `engine-builder build`",
        );
    }
    if b.len() < FIXED_HEADER + 8 {
        return err(format!("truncated: only {} bytes; {REBUILD}", b.len()));
    }
    let version = u32_at(b, 8);
    if version > FORMAT_VERSION {
        return err(format!(
            "engine format version {version} is newer than this build of jetrt reads (up to {FORMAT_VERSION}); \
             upgrade jetrt, or {REBUILD} from the model with this version"
        ));
    }
    if version == 0 {
        return err(format!(
            "engine format version 0 is invalid: the file is corrupt; {REBUILD}"
        ));
    }
    let recorded = u64_at(b, 16);
    if (b.len() as u64) < recorded {
        return err(format!(
            "truncated: {} of {recorded} bytes present; {REBUILD} or copy it again",
            b.len()
        ));
    }
    if (b.len() as u64) > recorded {
        return err(format!(
            "corrupt: {} bytes found where the file records {recorded}; {REBUILD}",
            b.len()
        ));
    }
    let end = b.len() - 8;
    let crc = u32_at(b, end);
    if &b[end + 4..] != TRAILER || crc != crc32fast::hash(&b[..end]) {
        return err(format!("corrupt: checksum mismatch; {REBUILD}"));
    }

    let count = u32_at(b, 12) as usize;
    if count > MAX_SECTIONS || FIXED_HEADER + count * SECTION_ENTRY > end {
        return err(format!(
            "corrupt: section table of {count} entries does not fit"
        ));
    }
    let mut header = None;
    let mut network = None;
    let mut weights: Option<&[u8]> = None;
    let mut plans = Vec::new();
    for i in 0..count {
        let e = FIXED_HEADER + i * SECTION_ENTRY;
        let kind = u32_at(b, e);
        let off = u64_at(b, e + 8);
        let len = u64_at(b, e + 16);
        let body = usize::try_from(off)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(o, l)| Some(o..o.checked_add(l)?))
            .filter(|r| r.start >= FIXED_HEADER && r.end <= end)
            .map(|r| &b[r])
            .ok_or_else(|| DecodeError(format!("corrupt: section {i} lies outside the file")))?;
        match kind {
            SECTION_HEADER => {
                header = Some(
                    serde_json::from_slice::<EngineHeader>(body)
                        .map_err(|e| DecodeError(format!("corrupt header: {e}")))?,
                )
            }
            SECTION_NETWORK => {
                network = Some(
                    serde_json::from_slice::<NetworkSection>(body)
                        .map_err(|e| DecodeError(format!("corrupt network: {e}")))?,
                )
            }
            SECTION_WEIGHTS => weights = Some(body),
            SECTION_PLAN => {
                if body.len() < 4 {
                    return err("corrupt: plan section too short");
                }
                let klen = u32_at(body, 0) as usize;
                let key_bytes = body
                    .get(4..4usize.saturating_add(klen))
                    .ok_or_else(|| DecodeError("corrupt: plan key overruns its section".into()))?;
                let key: PlanKey = serde_json::from_slice(key_bytes)
                    .map_err(|e| DecodeError(format!("corrupt plan key: {e}")))?;
                plans.push(Plan {
                    key,
                    data: body[4 + klen..].to_vec(),
                });
            }
            // Sections of kinds this version does not know are skipped, so
            // that minor additions stay readable.
            _ => {}
        }
    }
    let header = header.ok_or_else(|| DecodeError("corrupt: no header section".into()))?;
    let section = network.ok_or_else(|| DecodeError("corrupt: no network section".into()))?;
    let blob = weights.ok_or_else(|| DecodeError("corrupt: no weights section".into()))?;
    let mut net = section.network;
    for (i, w) in section.weights.iter().enumerate() {
        let range = usize::try_from(w.offset)
            .ok()
            .zip(usize::try_from(w.len).ok())
            .and_then(|(o, l)| Some(o..o.checked_add(l)?))
            .filter(|r| r.end <= blob.len())
            .ok_or_else(|| {
                DecodeError(format!(
                    "corrupt: weights {i} lie outside the weights section"
                ))
            })?;
        let want = volume(&w.shape).checked_mul(w.dtype.size());
        if want != Some(range.len()) {
            return err(format!(
                "corrupt: weights {i} ({} {}) have {} bytes",
                w.dtype,
                format_dims(&w.shape),
                range.len()
            ));
        }
        let t = Tensor::from_le_bytes(w.dtype, &w.shape, &blob[range])
            .map_err(|e| DecodeError(format!("corrupt: weights {i}: {e}")))?;
        net.weights.push(Arc::new(t));
    }
    net.check()
        .map_err(|e| DecodeError(format!("corrupt: {e}")))?;
    Ok(EngineData {
        header,
        network: Arc::new(net),
        plans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Activation, LayerKind};
    use crate::shape::Dim;

    fn sample() -> EngineData {
        let mut net = Network::new("tiny");
        let x = net.add_input("x", DataType::F32, vec![Dim::Known(1), Dim::Known(4)], None);
        let c = net.add_constant(
            "c",
            Tensor::from_f32(&[1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap(),
        );
        let s = net
            .add(
                "add",
                LayerKind::ElementWise {
                    op: crate::ir::ElementWiseOp::Sum,
                },
                vec![x, c],
            )
            .unwrap();
        let r = net
            .add(
                "relu",
                LayerKind::Activation {
                    activation: Activation::Relu,
                },
                vec![s],
            )
            .unwrap();
        net.mark_output("y", r);
        EngineData {
            header: EngineHeader {
                name: "tiny".into(),
                ..Default::default()
            },
            network: Arc::new(net),
            plans: vec![Plan {
                key: PlanKey {
                    backend: "cpu".into(),
                    device: "x".into(),
                    version: "1".into(),
                },
                data: vec![1, 2, 3],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        let bytes = encode(&e);
        let d = decode(&bytes).unwrap();
        assert_eq!(d.header, e.header);
        assert_eq!(*d.network, *e.network);
        assert_eq!(d.network.weights, e.network.weights);
        assert_eq!(d.plans, e.plans);
    }

    /// An engine file whose network declares an input beyond the element
    /// limit (one that used to load as ready and abort on its first run) is
    /// refused when it is read.
    #[test]
    fn an_absurd_input_is_refused_on_load() {
        let mut e = sample();
        let mut net = (*e.network).clone();
        net.inputs[0].info.shape = vec![Dim::Known(1 << 21), Dim::Known(1 << 21)];
        e.network = Arc::new(net);
        let err = decode(&encode(&e)).unwrap_err().to_string();
        assert!(err.contains("'x'") && err.contains("exceed"), "{err}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode(&sample());
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "cut at {n} decoded");
        }
    }

    #[test]
    fn every_bit_flip_is_an_error() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            for bit in [0, 3, 7] {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(decode(&b).is_err(), "flip of bit {bit} at byte {i} decoded");
            }
        }
    }

    #[test]
    fn future_version_is_named() {
        let mut bytes = encode(&sample());
        bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let e = decode(&bytes).unwrap_err().0;
        assert!(e.contains("newer"), "{e}");
    }
}
