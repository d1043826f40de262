//! Serde for floats that may be infinite or NaN (a Clip with one bound, say):
//! JSON has no such numbers, so they are written as the strings "inf",
//! "-inf" and "nan"; finite values stay plain numbers.

use serde::{Deserialize, Deserializer, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Num(f64),
    Text(String),
}

fn to_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Repr::deserialize(d)? {
        Repr::Num(v) => Ok(v),
        Repr::Text(s) => match s.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            other => Err(serde::de::Error::custom(format!(
                "'{other}' is not a number"
            ))),
        },
    }
}

fn write<S: Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("nan")
    } else if v.is_infinite() {
        s.serialize_str(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        s.serialize_f64(v)
    }
}

pub mod f32 {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        // Finite values go through f32's own shortest form.
        if v.is_finite() {
            s.serialize_f32(*v)
        } else {
            super::write(*v as f64, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        super::to_f64(d).map(|v| v as f32)
    }
}

pub mod f64 {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        super::write(*v, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        super::to_f64(d)
    }
}

/// A list of f64 that may hold infinities and NaN.
pub mod f64_vec {
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    struct One(f64);

    impl serde::Serialize for One {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::write(self.0, s)
        }
    }

    impl<'de> Deserialize<'de> for One {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::to_f64(d).map(One)
        }
    }

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for x in v {
            seq.serialize_element(&One(*x))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<One>::deserialize(d)?
            .into_iter()
            .map(|o| o.0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::ir::Activation;

    #[test]
    fn infinite_bounds_round_trip() {
        for a in [
            Activation::Clip {
                min: f32::NEG_INFINITY,
                max: 6.0,
            },
            Activation::Clip {
                min: 0.0,
                max: f32::INFINITY,
            },
            Activation::LeakyRelu { alpha: 0.01 },
        ] {
            let j = serde_json::to_string(&a).unwrap();
            let back: Activation = serde_json::from_str(&j).unwrap();
            assert_eq!(back, a, "{j}");
        }
        let nan: Activation = serde_json::from_str(r#"{"type":"Elu","alpha":"nan"}"#).unwrap();
        assert!(matches!(nan, Activation::Elu { alpha } if alpha.is_nan()));
    }
}
