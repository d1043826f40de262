//! GELU with the exact (erf) form, computed branch-free so that the loops
//! applying it vectorize: libm's erff is a call per element (about 4 ns
//! here, a third of a ConvNeXt MLP's time at 2 threads).
//!
//! erf comes from its complement, erfc(z) = t exp(-z^2 + P(t)) with
//! t = 1 / (1 + z/2) and P the degree-9 Chebyshev fit of Numerical Recipes
//! (erfcc: relative error under 1.2e-7 for every z >= 0); exp from a
//! range reduction by ln 2 and a degree-7 Taylor polynomial (error under
//! 1e-8 on |r| <= ln2 / 2). GELU = x (1 + erf(x / sqrt 2)) / 2 is taken
//! as x erfc(|z|) / 2 below 0, which keeps the tail that 1 + erf(z) in
//! float32 (libm's form here before) rounds to 0. Relative error: under
//! 2e-6 for |x| <= 4, growing in the negative tail with the rounding of the
//! exponent -z^2 (2e-5 at values of 1e-30).

/// e^y for y <= 0.5 (smaller values clamp at e^-87, a normal float).
#[inline(always)]
fn exp_small(y: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two, so that n * LN2_HI is exact for the n used here.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let y = y.max(-87.0);
    // Nearest integer by floor(+0.5): vectorizes (round-half-away does not).
    let n = (y * LOG2E + 0.5).floor();
    let r = y - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^n from its exponent bits; n is in -126..=1.
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// GELU, exact form: x (1 + erf(x / sqrt 2)) / 2.
// The fit's coefficients as published, digits beyond float32 included.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.5 * a);
    let p = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * exp_small(p - a * a);
    // 1 + erf(z) is erfc(-z): 2 - erfc(|z|) above 0 and erfc(|z|) below,
    // which keeps the tail that 1 + (erfc - 1) would round away.
    let one_plus_erf = if z < 0.0 { erfc } else { 2.0 - erfc };
    0.5 * x * one_plus_erf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against float64 libm (x erfc(-z) / 2, exact in the tail too) over a
    /// fine grid and the extremes.
    #[test]
    fn gelu_matches_the_libm_form() {
        let reference = |x: f32| {
            let c = libm::erfc(-(x as f64) / std::f64::consts::SQRT_2);
            (0.5 * x as f64 * c) as f32
        };
        // Relative error under 2e-6 where activations live; in the
        // negative tail it grows with the rounding of the exponent -z^2
        // (two roundings of z^2 in float32): 2e-5 of values under 1e-25.
        let mut worst = 0f64;
        let mut x = -12.0f32;
        while x <= 12.0 {
            let (g, r) = (gelu_erf(x), reference(x));
            if x.abs() <= 4.0 && r != 0.0 {
                worst = worst.max(((g - r).abs() / r.abs()) as f64);
            }
            let tol = 1e-6 + 3e-7 * x * x / 2.0;
            assert!(
                (g - r).abs() <= tol * r.abs() + 1e-37,
                "gelu({x}) = {g}, want {r}"
            );
            x += 1.0 / 1024.0;
        }
        assert!(worst < 2e-6, "worst relative error {worst}");
        for x in [0.0f32, -0.0, 1e-30, -1e-30, 50.0, -50.0, 1e30, -1e30] {
            let (g, r) = (gelu_erf(x), reference(x));
            assert!(
                (g - r).abs() <= 1e-6 * r.abs() + 1e-37,
                "gelu({x}) = {g}, want {r}"
            );
        }
        assert!(gelu_erf(f32::NAN).is_nan());
    }
}
