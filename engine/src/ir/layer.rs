//! Layer kinds of the network IR. Each kind is one TensorRT layer
//! (`INetworkDefinition::add*`), with the same parameters, so that the TensorRT
//! backend is a mechanical replay. Where a field goes beyond TensorRT (a fused
//! activation, an ONNX-only resize mode) its doc says how TensorRT gets it.

use crate::dtype::DataType;
use serde::{Deserialize, Serialize};

/// Index of a weights blob in the network's weights table (TensorRT `Weights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WeightsId(pub usize);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum LayerKind {
    /// `addConstant`: no inputs; one output holding the weights.
    Constant { weights: WeightsId },
    /// `addConvolutionNd`: input 0 is NC(D)HW data.
    Convolution(ConvParams),
    /// `addDeconvolutionNd`: kernel laid out [in, out/groups, k...].
    Deconvolution(ConvParams),
    /// `addPoolingNd`.
    Pooling(PoolParams),
    /// `addActivation`.
    Activation { activation: Activation },
    /// `addElementWise`: two inputs of equal rank, dims equal or 1 (broadcast).
    ElementWise { op: ElementWiseOp },
    /// `addUnary`.
    Unary { op: UnaryOp },
    /// `addScaleNd`: `(x * scale + shift) ^ power`.
    Scale(ScaleParams),
    /// `addMatrixMultiply`: batched, with broadcast over leading dims.
    MatrixMultiply { op0: MatrixOp, op1: MatrixOp },
    /// `addReduce`.
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keep_dims: bool,
    },
    /// `addSoftMax` along one axis.
    Softmax { axis: usize },
    /// `addShuffle`: transpose, reshape, transpose. When the layer has a second
    /// input it is the reshape dims as a 1-D int64 shape tensor (`setInput(1)`).
    Shuffle(ShuffleParams),
    /// `addConcatenation`.
    Concatenation { axis: usize },
    /// `addSlice`: static start/size/stride, or with inputs 1-3 (`setInput`)
    /// holding them as 1-D int64 shape tensors, which then take precedence.
    Slice(SliceParams),
    /// `addGather`: input 0 data, input 1 indices.
    Gather { axis: usize, mode: GatherMode },
    /// `addScatter`: the data (input 0) with the updates (input 2) written
    /// at the indices (input 1), or combined with what is there.
    Scatter {
        mode: ScatterMode,
        axis: usize,
        reduction: ScatterReduction,
    },
    /// `addResize`: with a second input, it is the output dims as a shape tensor.
    Resize(ResizeParams),
    /// `addShape`: the input's dims as a 1-D int64 tensor.
    Shape,
    /// `addIdentity`.
    Identity,
    /// `addCast`.
    Cast { to: DataType },
    /// `addSelect`: condition (bool), then-values, else-values; equal ranks,
    /// dims equal or 1.
    Select,
    /// `addTopK` along one axis: outputs the values and their int32 indices
    /// (ties keep the lower index first).
    TopK { op: TopKOp, k: usize, axis: usize },
    /// `addNormalization`: inputs x, scale, bias (both broadcast to x).
    /// Statistics are over `axes`; with `groups` > 1 the channel dim (1) is
    /// split into that many groups, each normalized on its own.
    Normalization {
        axes: Vec<usize>,
        #[serde(with = "super::nonfinite::f32")]
        epsilon: f32,
        groups: usize,
    },
    /// `addParametricReLU`: inputs x and slope (broadcast to x).
    ParametricRelu,
    /// `addCumulative` along one axis: sums, or products (ONNX CumProd,
    /// which TensorRT's layer lacks).
    Cumulative {
        axis: usize,
        exclusive: bool,
        reverse: bool,
        #[serde(default)]
        product: bool,
    },
    /// `addEinsum`.
    Einsum { equation: String },
    /// `addPluginV3`: an op implemented by a plugin (see [`super::plugin`]).
    Plugin(super::plugin::PluginParams),
}

impl LayerKind {
    /// TensorRT's name for the layer type.
    pub fn name(&self) -> &'static str {
        match self {
            LayerKind::Constant { .. } => "Constant",
            LayerKind::Convolution(_) => "Convolution",
            LayerKind::Deconvolution(_) => "Deconvolution",
            LayerKind::Pooling(_) => "Pooling",
            LayerKind::Activation { .. } => "Activation",
            LayerKind::ElementWise { .. } => "ElementWise",
            LayerKind::Unary { .. } => "Unary",
            LayerKind::Scale(_) => "Scale",
            LayerKind::MatrixMultiply { .. } => "MatrixMultiply",
            LayerKind::Reduce { .. } => "Reduce",
            LayerKind::Softmax { .. } => "Softmax",
            LayerKind::Shuffle(_) => "Shuffle",
            LayerKind::Concatenation { .. } => "Concatenation",
            LayerKind::Slice(_) => "Slice",
            LayerKind::Gather { .. } => "Gather",
            LayerKind::Scatter { .. } => "Scatter",
            LayerKind::Resize(_) => "Resize",
            LayerKind::Shape => "Shape",
            LayerKind::Identity => "Identity",
            LayerKind::Cast { .. } => "Cast",
            LayerKind::Select => "Select",
            LayerKind::TopK { .. } => "TopK",
            LayerKind::Normalization { .. } => "Normalization",
            LayerKind::ParametricRelu => "ParametricRelu",
            LayerKind::Cumulative { .. } => "Cumulative",
            LayerKind::Einsum { .. } => "Einsum",
            LayerKind::Plugin(_) => "Plugin",
        }
    }

    /// Weights this layer refers to.
    pub fn weights(&self) -> Vec<WeightsId> {
        match self {
            LayerKind::Constant { weights } => vec![*weights],
            LayerKind::Convolution(p) | LayerKind::Deconvolution(p) => {
                std::iter::once(p.kernel).chain(p.bias).collect()
            }
            LayerKind::Scale(p) => [p.shift, p.scale, p.power].into_iter().flatten().collect(),
            _ => vec![],
        }
    }

    /// Rewrites the weights ids this layer refers to.
    pub fn map_weights(&mut self, mut f: impl FnMut(WeightsId) -> WeightsId) {
        match self {
            LayerKind::Constant { weights } => *weights = f(*weights),
            LayerKind::Convolution(p) | LayerKind::Deconvolution(p) => {
                p.kernel = f(p.kernel);
                p.bias = p.bias.map(&mut f);
            }
            LayerKind::Scale(p) => {
                p.shift = p.shift.map(&mut f);
                p.scale = p.scale.map(&mut f);
                p.power = p.power.map(&mut f);
            }
            _ => {}
        }
    }
}

/// Convolution and deconvolution parameters; spatial vectors have one entry per
/// spatial dim. Paddings are signed because a deconvolution's output padding
/// is expressed as a negative post-padding, as TensorRT does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvParams {
    pub out_channels: usize,
    pub kernel_size: Vec<usize>,
    pub stride: Vec<usize>,
    pub pre_padding: Vec<i64>,
    pub post_padding: Vec<i64>,
    pub dilation: Vec<usize>,
    pub groups: usize,
    /// [out, in/groups, k...] for convolution; [in, out/groups, k...] for deconvolution.
    pub kernel: WeightsId,
    /// [out].
    pub bias: Option<WeightsId>,
    /// An activation applied to the output: what the Convolution+Activation
    /// fusion pass leaves. TensorRT gets it replayed as a following IActivationLayer
    /// (which its builder fuses again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolKind {
    Max,
    Average,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolParams {
    pub pool_type: PoolKind,
    pub window: Vec<usize>,
    pub stride: Vec<usize>,
    pub pre_padding: Vec<usize>,
    pub post_padding: Vec<usize>,
    /// Output size rounds up (ONNX `ceil_mode`, TensorRT `kEXPLICIT_ROUND_UP`);
    /// a window that would start in the post-padding is dropped, as in PyTorch.
    pub round_up: bool,
    /// Average pooling divides by the count of non-padding elements
    /// (TensorRT `setAverageCountExcludesPadding`).
    pub exclude_padding: bool,
}

/// TensorRT `ActivationType`, with its alpha/beta named.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
    LeakyRelu {
        #[serde(with = "super::nonfinite::f32")]
        alpha: f32,
    },
    Elu {
        #[serde(with = "super::nonfinite::f32")]
        alpha: f32,
    },
    Selu {
        #[serde(with = "super::nonfinite::f32")]
        alpha: f32,
        #[serde(with = "super::nonfinite::f32")]
        gamma: f32,
    },
    Softsign,
    /// `alpha * ln(1 + exp(beta * x))`.
    Softplus {
        #[serde(with = "super::nonfinite::f32")]
        alpha: f32,
        #[serde(with = "super::nonfinite::f32")]
        beta: f32,
    },
    Clip {
        #[serde(with = "super::nonfinite::f32")]
        min: f32,
        #[serde(with = "super::nonfinite::f32")]
        max: f32,
    },
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid {
        #[serde(with = "super::nonfinite::f32")]
        alpha: f32,
        #[serde(with = "super::nonfinite::f32")]
        beta: f32,
    },
    /// `alpha * tanh(beta * x)`.
    ScaledTanh {
        #[serde(with = "super::nonfinite::f32")]
        alpha: f32,
        #[serde(with = "super::nonfinite::f32")]
        beta: f32,
    },
    ThresholdedRelu {
        #[serde(with = "super::nonfinite::f32")]
        alpha: f32,
    },
    GeluErf,
    GeluTanh,
}

impl Activation {
    /// The activation applied to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
            Activation::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            Activation::Elu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * (x.exp() - 1.0)
                }
            }
            Activation::Selu { alpha, gamma } => {
                if x > 0.0 {
                    gamma * x
                } else {
                    gamma * alpha * (x.exp() - 1.0)
                }
            }
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Softplus { alpha, beta } => {
                let z = beta * x;
                // ln(1 + e^z) without overflow for large z.
                alpha * (z.max(0.0) + (-z.abs()).exp().ln_1p())
            }
            Activation::Clip { min, max } => x.max(min).min(max),
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Activation::ScaledTanh { alpha, beta } => alpha * (beta * x).tanh(),
            Activation::ThresholdedRelu { alpha } => {
                if x > alpha {
                    x
                } else {
                    0.0
                }
            }
            Activation::GeluErf => 0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2)),
            Activation::GeluTanh => {
                const C: f32 = 0.797_884_6; // sqrt(2/pi)
                0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ElementWiseOp {
    Sum,
    Prod,
    Max,
    Min,
    Sub,
    Div,
    Pow,
    FloorDiv,
    /// Logical on bool operands, bitwise on integers.
    And,
    Or,
    Xor,
    Equal,
    Greater,
    Less,
    /// Integer shifts by the second operand; a count outside 0..bits
    /// gives 0 (and, shifting right, -1 for a negative signed value), as
    /// ONNX's BitShift defines it.
    ShiftLeft,
    ShiftRight,
}

impl ElementWiseOp {
    /// Ops whose output is bool whatever the input type.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            ElementWiseOp::Equal | ElementWiseOp::Greater | ElementWiseOp::Less
        )
    }

    pub fn is_shift(self) -> bool {
        matches!(self, ElementWiseOp::ShiftLeft | ElementWiseOp::ShiftRight)
    }

    pub fn is_logical(self) -> bool {
        matches!(
            self,
            ElementWiseOp::And | ElementWiseOp::Or | ElementWiseOp::Xor
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    Exp,
    Log,
    Sqrt,
    Recip,
    Abs,
    Neg,
    Sin,
    Cos,
    Tan,
    Sinh,
    Cosh,
    Asin,
    Acos,
    Atan,
    Asinh,
    Acosh,
    Atanh,
    Ceil,
    Floor,
    Erf,
    Not,
    Sign,
    Round,
    IsInf,
    IsNan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScaleMode {
    /// One value for the whole tensor.
    Uniform,
    /// One value per channel along `channel_axis`.
    Channel,
    /// One value per element of the dims from `channel_axis` on.
    Elementwise,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleParams {
    pub mode: ScaleMode,
    pub shift: Option<WeightsId>,
    pub scale: Option<WeightsId>,
    pub power: Option<WeightsId>,
    pub channel_axis: usize,
    /// An activation applied to the result: what the Scale+Activation
    /// fusion pass leaves (a DenseNet's BatchNorm then ReLU before each
    /// convolution), so a backend runs both in one pass over the tensor.
    /// TensorRT gets it replayed as a following IActivationLayer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatrixOp {
    None,
    Transpose,
    /// The input is a (batch of) vector(s): its last dim is the vector.
    Vector,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopKOp {
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReduceOp {
    Sum,
    Prod,
    Max,
    Min,
    Avg,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShuffleParams {
    pub first_transpose: Option<Vec<usize>>,
    /// Reshape dims: 0 copies the input dim (unless `zero_is_placeholder` is
    /// false), -1 is inferred. Absent when the dims come from input 1 or there
    /// is no reshape.
    pub reshape: Option<Vec<i64>>,
    pub second_transpose: Option<Vec<usize>>,
    pub zero_is_placeholder: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SliceMode {
    StrictBounds,
    Wrap,
    Clamp,
    Fill,
    Reflect,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceParams {
    pub start: Vec<i64>,
    pub size: Vec<usize>,
    pub stride: Vec<i64>,
    pub mode: SliceMode,
    /// The value of positions outside the input in `Fill` mode (TensorRT's
    /// input 4, here a parameter).
    #[serde(default, with = "super::nonfinite::f64")]
    pub fill: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GatherMode {
    /// Output = data dims before axis, indices dims, data dims after axis.
    Default,
    /// ONNX GatherElements: indices have the data's rank.
    Element,
}

/// TensorRT `ScatterMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScatterMode {
    /// ONNX ScatterElements: indices and updates of one shape, each index
    /// naming the position along `axis` its update goes to.
    Element,
    /// ONNX ScatterND: the indices' last dim is a tuple naming a slice of
    /// the data's leading dims; updates hold one slice per tuple.
    Nd,
}

/// How an update combines with the value it lands on (ONNX's reduction);
/// updates landing on one position apply in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScatterReduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResizeMode {
    Nearest,
    Linear,
    Cubic,
}

/// How output coordinates map to input coordinates (TensorRT
/// `ResizeCoordinateTransformation`, plus the ONNX modes TensorRT lacks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordinateTransform {
    AlignCorners,
    Asymmetric,
    HalfPixel,
    /// ONNX `half_pixel_symmetric` (opset 19).
    HalfPixelSymmetric,
    /// ONNX `tf_half_pixel_for_nn` (opset 11 only): `(x + 0.5) / scale`.
    TfHalfPixelForNn,
    /// ONNX `tf_crop_and_resize`: samples the region `roi` of the input;
    /// points outside the input get `extrapolation_value`.
    TfCropAndResize,
}

/// TensorRT `ResizeSelector`: `Upper` maps a length-1 output to coordinate 0
/// (ONNX `pytorch_half_pixel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResizeSelector {
    Formula,
    Upper,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NearestRounding {
    HalfUp,
    HalfDown,
    Floor,
    Ceil,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ResizeOutput {
    /// Output dims (all of them).
    Dims(Vec<usize>),
    /// One scale per dim.
    Scales(Vec<f32>),
    /// Output dims come from input 1, a shape tensor.
    FromInput,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResizeParams {
    pub output: ResizeOutput,
    pub mode: ResizeMode,
    pub coordinate_transform: CoordinateTransform,
    pub selector: ResizeSelector,
    pub nearest_rounding: NearestRounding,
    #[serde(with = "super::nonfinite::f32")]
    pub cubic_coeff: f32,
    pub exclude_outside: bool,
    /// Scales the coordinate formulas use, when they differ from output/input
    /// (ONNX Resize given scales, or sizes with a keep-aspect-ratio policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinate_scales: Option<Vec<f32>>,
    /// For `TfCropAndResize`: starts for every dim, then ends, normalized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roi: Option<Vec<f32>>,
    #[serde(default, with = "super::nonfinite::f32")]
    pub extrapolation_value: f32,
}
