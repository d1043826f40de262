//! Tensor dimensions at build time: known numbers, or dynamic dims bounded by
//! an optimization profile (as TensorRT's `Dims` with -1 plus a profile).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// One dimension of a tensor in the network IR.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed size.
    Known(usize),
    /// A dynamic dim named by the model (e.g. `batch`); equal names are equal sizes.
    Named(String),
    /// A dynamic dim computed at run time that has no name.
    Unknown,
}

impl Dim {
    pub fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            _ => None,
        }
    }

    pub fn is_known(&self) -> bool {
        matches!(self, Dim::Known(_))
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Named(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Self {
        Dim::Known(n)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum DimRepr {
    Known(usize),
    Named(String),
    Unknown(Option<()>),
}

impl Serialize for Dim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dim::Known(n) => DimRepr::Known(*n),
            Dim::Named(n) => DimRepr::Named(n.clone()),
            Dim::Unknown => DimRepr::Unknown(None),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Dim {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match DimRepr::deserialize(d)? {
            DimRepr::Known(n) => Dim::Known(n),
            DimRepr::Named(n) => Dim::Named(n),
            DimRepr::Unknown(_) => Dim::Unknown,
        })
    }
}

/// One element of a shape tensor's value as known at build time: a number,
/// a named dynamic dim, or unknown. Lets `Reshape(x, Concat(Shape(x)[0], -1))`
/// keep its output dims through the build.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SymInt {
    Int(i64),
    Named(String),
    Unknown,
}

impl From<&Dim> for SymInt {
    fn from(d: &Dim) -> Self {
        match d {
            Dim::Known(n) => SymInt::Int(*n as i64),
            Dim::Named(s) => SymInt::Named(s.clone()),
            Dim::Unknown => SymInt::Unknown,
        }
    }
}

impl SymInt {
    /// This value as a dim, if it can be one.
    pub fn to_dim(&self) -> Dim {
        match self {
            SymInt::Int(n) if *n >= 0 => Dim::Known(*n as usize),
            SymInt::Named(s) => Dim::Named(s.clone()),
            _ => Dim::Unknown,
        }
    }
}

/// The dims of a tensor in the IR.
pub type Shape = Vec<Dim>;

/// All dims as numbers, if every one is known.
pub fn known_dims(shape: &[Dim]) -> Option<Vec<usize>> {
    shape.iter().map(Dim::known).collect()
}

/// `1x3x224x224`, `batchx3x224x224`; `scalar` for rank 0.
pub fn format_shape(shape: &[Dim]) -> String {
    if shape.is_empty() {
        return "scalar".into();
    }
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// `1x3x224x224` for concrete dims.
pub fn format_dims(dims: &[usize]) -> String {
    if dims.is_empty() {
        return "scalar".into();
    }
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// Min/opt/max concrete dims an input may take, as a TensorRT optimization profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub min: Vec<usize>,
    pub opt: Vec<usize>,
    pub max: Vec<usize>,
}

impl Profile {
    /// Whether `dims` lies inside the profile.
    pub fn contains(&self, dims: &[usize]) -> bool {
        dims.len() == self.min.len()
            && dims
                .iter()
                .zip(self.min.iter().zip(&self.max))
                .all(|(d, (lo, hi))| lo <= d && d <= hi)
    }
}

/// Number of elements of concrete dims (1 for a scalar).
pub fn volume(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// The most elements a tensor may have: 2^40, beyond what any device can
/// hold and far below where products of dims wrap. Shape inference refuses
/// larger tensors, so [`volume`] of an inferred shape cannot overflow.
pub const MAX_ELEMENTS: usize = 1 << 40;

/// The product of `dims` if it is at most [`MAX_ELEMENTS`] (unknown dims
/// count as 1), else `None`; never wraps.
pub fn bounded_volume(shape: &[Dim]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(d.known().unwrap_or(1)))
        .filter(|&n| n <= MAX_ELEMENTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_volumes_refuse_what_would_wrap() {
        let k = |v: &[usize]| v.iter().map(|&d| Dim::Known(d)).collect::<Vec<_>>();
        assert_eq!(bounded_volume(&k(&[2, 3, 4])), Some(24));
        assert_eq!(bounded_volume(&[Dim::Unknown, Dim::Known(5)]), Some(5));
        assert_eq!(bounded_volume(&k(&[1 << 20, 1 << 20])), Some(1 << 40));
        assert_eq!(bounded_volume(&k(&[1 << 20, 1 << 21])), None);
        // 2^64 wraps to 0 in a plain product.
        assert_eq!(bounded_volume(&k(&[1 << 32, 1 << 32])), None);
    }

    #[test]
    fn dims_round_trip_through_json() {
        let shape = vec![Dim::Named("batch".into()), Dim::Known(3), Dim::Unknown];
        let json = serde_json::to_string(&shape).unwrap();
        assert_eq!(json, r#"["batch",3,null]"#);
        let back: Shape = serde_json::from_str(&json).unwrap();
        assert_eq!(back, shape);
        assert_eq!(format_shape(&back), "batchx3x?");
    }

    #[test]
    fn profile_bounds() {
        let p = Profile {
            min: vec![1, 3],
            opt: vec![2, 3],
            max: vec![4, 3],
        };
        assert!(p.contains(&[4, 3]));
        assert!(!p.contains(&[5, 3]));
        assert!(!p.contains(&[1, 3, 1]));
    }
}
