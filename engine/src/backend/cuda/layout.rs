//! Which 4-D activations a float16 plan stores channels-last (NHWC).
//!
//! cuDNN's tensor-core convolutions work on NHWC. Given NCHW tensors, cuDNN
//! transposes every input and output around the convolution itself: on an
//! H200 those transposes were 40% of ResNet-18's GPU time at batch 1. So
//! convolutions write NHWC, and the layers between them that only need
//! every operand in one layout (element-wise, activation, per-channel
//! scale, 2-D pooling, concatenation, keep-dims reduction) run on NHWC
//! data as they are, with their dims and axes permuted. Everything else
//! (shuffles, matrix products, normalizations, grouped convolutions, whose
//! cuDNN NHWC kernels were slower: MobileNetV2 0.34 -> 0.44 ms) and the
//! network's inputs and outputs stay NCHW. A convolution is where a tensor
//! changes layout (its kernel stages an input of the other layout), so a
//! layer that needs NCHW makes the convolutions feeding it write NCHW. A
//! convolution starts a channels-last run only from an input that is
//! channels-last already or thin (at most [`THIN`] channels, as an image):
//! restaging a wide one costs about what NHWC saves.
//!
//! A tensor whose channel count is 1, or whose spatial dims are all 1
//! (`[N, C, 1, 1]` after a global pooling), has the same bytes either way
//! and suits any reader (ConvNeXt's layer scale, `[1, C, 1, 1]`, too).
//!
//! Permutes between channels-first dims and `[N, H, W, C]` (ConvNeXt puts
//! two around every LayerNorm and MLP) move no data between a channels-
//! last tensor and its `[N, H, W, C]` twin: such a step is a view of its
//! input (`exec.rs`), and the convolutions on either side stay NHWC.
//!
//! The assignment is a fixpoint: a forward pass picks each step's layout
//! from its inputs, a backward pass marks the NHWC tensors that a
//! channels-first step reads as needing NCHW, and the two repeat until
//! nothing more is marked (the marked set only grows, so it ends).

use crate::ir::TensorRef;
use std::collections::HashSet;

/// The most channels an input a convolution restages channels-last may
/// have.
pub const THIN: usize = 4;

/// How a step may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A 2-D ungrouped convolution in float16: runs in its output's layout
    /// and reads its input (0) in either; a residual (1) must be in the
    /// output's.
    Conv,
    /// Runs in either layout when every operand is in it (or suits both).
    Either,
    /// Reads and writes NCHW only.
    Fixed,
    /// A permute of channels-first dims to `[N, H, W, C]`: over an NHWC
    /// input it moves no data (its output, stored as its dims say, has
    /// the input's bytes), so it runs "channels-last" exactly when its
    /// input is.
    ToLast,
    /// The permute back, from `[N, H, W, C]` to channels-first dims: its
    /// output stored NHWC has its input's bytes.
    FromLast,
}

/// A step as the assignment sees it: its role and the tensors it reads on
/// the device and writes.
#[derive(Clone, Debug)]
pub struct StepShape {
    pub role: Role,
    pub ins: Vec<TensorRef>,
    pub outs: Vec<TensorRef>,
}

/// What the assignment needs to know of a tensor.
pub trait Tensors {
    /// It is 4-D.
    fn rank4(&self, t: TensorRef) -> bool;
    /// It is 4-D with the same bytes in both layouts (1 channel, or 1x1
    /// spatial dims), as far as its dims are known before a plan.
    fn either(&self, t: TensorRef) -> bool;
    /// It has at most [`THIN`] channels (dim 1), as far as known.
    fn thin(&self, t: TensorRef) -> bool;
}

/// The outcome: the tensors stored NHWC and the steps (by their index in
/// the slice given to [`assign`]) that run on NHWC operands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layouts {
    pub tensors: HashSet<TensorRef>,
    pub steps: HashSet<usize>,
}

impl Layouts {
    pub fn is_nhwc(&self, t: TensorRef) -> bool {
        self.tensors.contains(&t)
    }

    pub fn step_nhwc(&self, i: usize) -> bool {
        self.steps.contains(&i)
    }
}

/// Assigns layouts. `nchw` are the tensors that must stay channels-first
/// whatever their dims (the network's inputs and outputs).
pub fn assign(
    steps: &[Option<StepShape>],
    info: &dyn Tensors,
    nchw: &HashSet<TensorRef>,
) -> Layouts {
    let mut forced = nchw.clone();
    loop {
        let l = forward(steps, info, &forced);
        let mut more = false;
        for (i, s) in steps.iter().enumerate() {
            let Some(s) = s else { continue };
            if l.step_nhwc(i) {
                continue;
            }
            // A channels-first step: what it reads must be channels-first,
            // except a convolution's input, which it stages itself.
            let skip = usize::from(s.role == Role::Conv);
            for &t in s.ins.iter().skip(skip) {
                if l.is_nhwc(t) && !info.either(t) {
                    more |= forced.insert(t);
                }
            }
        }
        if !more {
            return l;
        }
    }
}

/// Each step's layout given the tensors that must be NCHW.
fn forward(
    steps: &[Option<StepShape>],
    info: &dyn Tensors,
    forced: &HashSet<TensorRef>,
) -> Layouts {
    let mut l = Layouts::default();
    for (i, s) in steps.iter().enumerate() {
        let Some(s) = s else { continue };
        if s.role == Role::ToLast {
            // Its output is [N, H, W, C] as its dims say, whatever the
            // input's storage: never a channels-last tensor itself.
            if s.ins
                .first()
                .is_some_and(|&x| l.is_nhwc(x) && !info.either(x))
            {
                l.steps.insert(i);
            }
            continue;
        }
        let outs_ok = !s.outs.is_empty()
            && s.outs
                .iter()
                .all(|&t| info.rank4(t) && (info.either(t) || !forced.contains(&t)));
        let suits = |t: TensorRef| l.is_nhwc(t) || info.either(t);
        let nhwc = outs_ok
            && match s.role {
                Role::Conv => {
                    s.ins.first().is_some_and(|&x| suits(x) || info.thin(x))
                        && s.ins.get(1).is_none_or(|&r| suits(r))
                }
                Role::Either => {
                    s.ins.iter().all(|&t| suits(t))
                        && s.ins.iter().any(|&t| l.is_nhwc(t) && !info.either(t))
                }
                // (ToLast is settled above.)
                Role::Fixed | Role::ToLast => false,
                Role::FromLast => s.ins.first().is_some_and(|&x| !l.is_nhwc(x)),
            };
        if nhwc {
            l.steps.insert(i);
            l.tensors.extend(s.outs.iter().copied());
        }
    }
    l
}

/// `[N, C, rest...]` (dims, strides, per-dim tables) in channels-last
/// storage order: `[N, rest..., C]`.
pub fn to_nhwc<T: Clone>(v: &[T]) -> Vec<T> {
    let mut d = v.to_vec();
    if d.len() >= 3 {
        let c = d.remove(1);
        d.push(c);
    }
    d
}

/// Where axis `a` of a channels-first tensor of `rank` dims sits in its
/// channels-last storage order.
pub fn nhwc_axis(a: usize, rank: usize) -> usize {
    match a {
        0 => 0,
        1 => rank - 1,
        a => a - 1,
    }
}

/// Element strides, in `dims` order (N, C, rest...), of a packed tensor
/// stored channels-first or, when `nhwc`, channels-last.
pub fn strides(dims: &[usize], nhwc: bool) -> Vec<i64> {
    let order: Vec<usize> = (0..dims.len()).collect();
    let order = if nhwc { to_nhwc(&order) } else { order };
    let mut s = vec![0i64; dims.len()];
    let mut step = 1i64;
    for &k in order.iter().rev() {
        s[k] = step;
        step *= dims[k] as i64;
    }
    s
}

/// The bytes of a packed channels-first tensor of `dims` (elements of
/// `esize` bytes) reordered channels-last (a filter: OIHW to OHWI).
pub fn nhwc_bytes(bytes: &[u8], dims: &[usize], esize: usize) -> Vec<u8> {
    if dims.len() < 3 {
        return bytes.to_vec();
    }
    let (n, c) = (dims[0], dims[1]);
    let inner: usize = dims[2..].iter().product();
    let mut out = vec![0u8; bytes.len()];
    for b in 0..n {
        for ch in 0..c {
            for i in 0..inner {
                let from = ((b * c + ch) * inner + i) * esize;
                let to = ((b * inner + i) * c + ch) * esize;
                out[to..to + esize].copy_from_slice(&bytes[from..from + esize]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tensors named by layer index: rank 4 unless listed as `other`,
    /// layout-neutral if listed as `either`; the inputs are thin.
    struct Toy {
        either: Vec<TensorRef>,
        other: Vec<TensorRef>,
    }

    impl Tensors for Toy {
        fn rank4(&self, t: TensorRef) -> bool {
            !self.other.contains(&t)
        }
        fn either(&self, t: TensorRef) -> bool {
            self.either.contains(&t)
        }
        fn thin(&self, t: TensorRef) -> bool {
            matches!(t, TensorRef::Input(_))
        }
    }

    fn t(i: usize) -> TensorRef {
        TensorRef::Layer(i, 0)
    }

    fn step(role: Role, ins: &[TensorRef], out: usize) -> Option<StepShape> {
        Some(StepShape {
            role,
            ins: ins.to_vec(),
            outs: vec![t(out)],
        })
    }

    fn toy() -> Toy {
        Toy {
            either: vec![],
            other: vec![],
        }
    }

    /// ResNet's shape: conv, pool, conv with residual, global pool
    /// (1x1, neutral), flatten (fixed) and the output.
    #[test]
    fn a_residual_network_runs_channels_last_up_to_the_pooled_features() {
        let x = TensorRef::Input(0);
        let steps = vec![
            step(Role::Conv, &[x], 0),
            step(Role::Either, &[t(0)], 1),
            step(Role::Conv, &[t(1), t(1)], 2),
            step(Role::Either, &[t(2)], 3),
            step(Role::Fixed, &[t(3)], 4),
        ];
        let info = Toy {
            either: vec![t(3)],
            other: vec![t(4)],
        };
        let l = assign(&steps, &info, &HashSet::from([x, t(4)]));
        assert_eq!(l.steps, HashSet::from([0, 1, 2, 3]));
        assert!(l.is_nhwc(t(2)) && !l.is_nhwc(t(4)));
    }

    /// A layer that needs NCHW makes the convolution feeding it (through
    /// an element-wise layer) write NCHW; the earlier one stays NHWC.
    #[test]
    fn a_channels_first_reader_pushes_nchw_back_to_the_convolution() {
        let x = TensorRef::Input(0);
        let steps = vec![
            step(Role::Conv, &[x], 0),
            step(Role::Conv, &[t(0)], 1),
            step(Role::Either, &[t(1)], 2),
            step(Role::Fixed, &[t(2)], 3),
        ];
        let l = assign(&steps, &toy(), &HashSet::from([x, t(3)]));
        assert_eq!(l.steps, HashSet::from([0]));
        assert!(l.is_nhwc(t(0)) && !l.is_nhwc(t(1)) && !l.is_nhwc(t(2)));
    }

    /// A tensor read by both an NHWC consumer and a fixed one is NCHW, and
    /// the element-wise consumer follows it.
    #[test]
    fn two_readers_that_disagree_settle_on_nchw() {
        let x = TensorRef::Input(0);
        let steps = vec![
            step(Role::Conv, &[x], 0),
            step(Role::Either, &[t(0)], 1),
            step(Role::Fixed, &[t(0)], 2),
            step(Role::Conv, &[t(1)], 3),
        ];
        let l = assign(&steps, &toy(), &HashSet::from([x, t(2), t(3)]));
        assert!(l.steps.is_empty(), "{l:?}");
    }

    /// An element-wise layer mixing an NHWC tensor with an NCHW one of
    /// full dims runs channels-first, and so does the convolution feeding
    /// it; a neutral operand mixes with either.
    #[test]
    fn mixed_operands_run_channels_first_unless_neutral() {
        let (x, y, z) = (
            TensorRef::Input(0),
            TensorRef::Input(1),
            TensorRef::Input(2),
        );
        let info = Toy {
            either: vec![z],
            other: vec![],
        };
        let io = HashSet::from([x, y, z]);
        let mixed = vec![step(Role::Conv, &[x], 0), step(Role::Either, &[t(0), y], 1)];
        assert!(assign(&mixed, &info, &io).steps.is_empty());
        let neutral = vec![step(Role::Conv, &[x], 0), step(Role::Either, &[t(0), z], 1)];
        assert_eq!(assign(&neutral, &info, &io).steps, HashSet::from([0, 1]));
        // The same with its last output a network output: all NCHW.
        let mut out = io.clone();
        out.insert(t(1));
        assert!(assign(&neutral, &info, &out).steps.is_empty());
    }

    /// A residual in the other layout makes the convolution run in the
    /// residual's.
    #[test]
    fn a_residual_in_nchw_keeps_its_convolution_nchw() {
        let x = TensorRef::Input(0);
        let steps = vec![step(Role::Conv, &[x, x], 0)];
        let l = assign(&steps, &toy(), &HashSet::from([x]));
        assert!(l.steps.is_empty());
    }

    /// Reordered bytes sit where the channels-last strides say.
    #[test]
    fn channels_last_bytes_match_their_strides() {
        let dims = [2, 3, 2, 2];
        let n: usize = dims.iter().product();
        let src: Vec<u8> = (0..n as u16).flat_map(|v| v.to_le_bytes()).collect();
        let out = nhwc_bytes(&src, &dims, 2);
        let (cf, cl) = (strides(&dims, false), strides(&dims, true));
        assert_eq!(cl, vec![12, 1, 6, 3]);
        for a in 0..2 {
            for b in 0..3 {
                for c in 0..2 {
                    for d in 0..2 {
                        let at = |s: &[i64]| (a * s[0] + b * s[1] + c * s[2] + d * s[3]) as usize;
                        let (f, l) = (at(&cf), at(&cl));
                        assert_eq!(src[2 * f..2 * f + 2], out[2 * l..2 * l + 2]);
                    }
                }
            }
        }
    }

    /// A convolution reading a wide NCHW tensor (here a fixed layer's
    /// output) stays NCHW; the one after it, reading NCHW too, as well.
    #[test]
    fn a_wide_channels_first_input_does_not_start_a_channels_last_run() {
        let x = TensorRef::Input(0);
        let steps = vec![
            step(Role::Fixed, &[x], 0),
            step(Role::Conv, &[t(0)], 1),
            step(Role::Either, &[t(1)], 2),
            step(Role::Conv, &[t(2)], 3),
        ];
        let l = assign(&steps, &toy(), &HashSet::from([x, t(3)]));
        assert!(l.steps.is_empty(), "{l:?}");
    }

    /// ConvNeXt's block: a depthwise convolution, a permute to
    /// [N, H, W, C], layers that need it as it is, the permute back, a
    /// layer scale and the residual. Both permutes run as views, and
    /// everything but the [N, H, W, C] tensors is channels-last.
    #[test]
    fn permutes_around_channels_last_tensors_move_no_data() {
        let x = TensorRef::Input(0);
        let steps = vec![
            step(Role::Conv, &[x], 0),
            step(Role::Conv, &[t(0)], 1),
            step(Role::ToLast, &[t(1)], 2),
            step(Role::Fixed, &[t(2)], 3),
            step(Role::FromLast, &[t(3)], 4),
            step(Role::Either, &[t(4), t(9)], 5),
            step(Role::Either, &[t(5), t(0)], 6),
            step(Role::Conv, &[t(6)], 7),
        ];
        let info = Toy {
            either: vec![t(9)],
            other: vec![t(9)],
        };
        let l = assign(&steps, &info, &HashSet::from([x, t(7)]));
        assert_eq!(l.steps, HashSet::from([0, 1, 2, 4, 5, 6]));
        for k in [0, 1, 4, 5, 6] {
            assert!(l.is_nhwc(t(k)), "{k}");
        }
        assert!(!l.is_nhwc(t(2)) && !l.is_nhwc(t(3)) && !l.is_nhwc(t(7)));
    }

    /// A permute of a channels-first tensor is a transpose as ever, and a
    /// permute back whose output a channels-first layer reads writes NCHW.
    #[test]
    fn permutes_of_channels_first_tensors_stay_transposes() {
        let x = TensorRef::Input(0);
        let steps = vec![
            step(Role::ToLast, &[x], 0),
            step(Role::FromLast, &[t(0)], 1),
            step(Role::Fixed, &[t(1)], 2),
        ];
        let l = assign(&steps, &toy(), &HashSet::from([x, t(2)]));
        assert!(l.steps.is_empty() && l.tensors.is_empty(), "{l:?}");
    }

    #[test]
    fn permuted_dims_and_axes() {
        assert_eq!(to_nhwc(&[2, 3, 4, 5]), vec![2, 4, 5, 3]);
        let d = [2, 3, 4, 5];
        let p = to_nhwc(&d);
        for a in 0..4 {
            assert_eq!(p[nhwc_axis(a, 4)], d[a]);
        }
    }
}
