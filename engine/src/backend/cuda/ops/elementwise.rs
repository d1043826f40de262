//! ElementWise, ParametricRelu, Unary, Activation, Scale, Select and Cast
//! (elementwise.cu). Parameters are filled in when the layer is planned;
//! a run only sets the pointers and launches.

use super::{
    broadcast, coalesce, dims8, input_storage, strides8, Arg, Builder, Dims, Kernel, PlanCx, RunCx,
    MAX_RANK,
};
use crate::backend::cuda::device::DeviceBuf;
use crate::backend::cuda::launch::{grid_for, launch, sized, typed, Func};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::{Activation, ElementWiseOp, Layer, ScaleMode, ScaleParams, UnaryOp};

pub const OP_PRELU: i32 = 14;

/// The kernel's op code of an ElementWise op.
fn binary_code(op: ElementWiseOp) -> i32 {
    use ElementWiseOp as E;
    match op {
        E::Sum => 0,
        E::Prod => 1,
        E::Max => 2,
        E::Min => 3,
        E::Sub => 4,
        E::Div => 5,
        E::Pow => 6,
        E::FloorDiv => 7,
        E::And => 8,
        E::Or => 9,
        E::Xor => 10,
        E::Equal => 11,
        E::Greater => 12,
        E::Less => 13,
        E::ShiftLeft => 15,
        E::ShiftRight => 16,
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct BinaryParams {
    out: u64,
    a: u64,
    b: u64,
    n: i64,
    dims: Dims,
    sa: [i64; MAX_RANK],
    sb: [i64; MAX_RANK],
    op: i32,
    pad: i32,
}
const _: () = assert!(std::mem::size_of::<BinaryParams>() == 240);

pub struct Binary {
    f: Func,
    /// For float operands of the output's dims, packed, 16 bytes a thread.
    flat: Option<Func>,
    /// Whether the planned dims let `flat` run (pointers checked when
    /// enqueued).
    use_flat: bool,
    p: BinaryParams,
}

impl Binary {
    /// `code` is an ElementWiseOp's (see [`binary_code`]) or [`OP_PRELU`].
    pub fn new(b: &Builder<'_>, l: &Layer, code: i32) -> Result<Self> {
        let ins = input_storage(b, l);
        if ins[0] != ins[1] {
            return Err(Error::Unsupported {
                backend: "cuda",
                what: format!("element-wise operands of {} and {}", ins[0], ins[1]),
            });
        }
        let compare = [
            binary_code(ElementWiseOp::Equal),
            binary_code(ElementWiseOp::Greater),
            binary_code(ElementWiseOp::Less),
        ];
        let flat = match ins[0] {
            DataType::F32 | DataType::F16 if !compare.contains(&code) => {
                Some(b.func(&typed("ew_binary_flat", ins[0]))?)
            }
            _ => None,
        };
        Ok(Binary {
            f: b.func(&typed("ew_binary", ins[0]))?,
            flat,
            use_flat: false,
            p: BinaryParams {
                op: code,
                ..Default::default()
            },
        })
    }

    pub fn from_op(b: &Builder<'_>, l: &Layer, op: ElementWiseOp) -> Result<Self> {
        Self::new(b, l, binary_code(op))
    }
}

impl Kernel for Binary {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let o = &outs[0].dims;
        self.p.n = outs[0].len() as i64;
        let (dims, s) = coalesce(o, &[broadcast(&ins[0].dims, o), broadcast(&ins[1].dims, o)]);
        self.p.dims = dims8(&dims)?;
        self.p.sa = strides8(&s[0]);
        self.p.sb = strides8(&s[1]);
        let packed = dims.len() == 1 && s.iter().all(|s| s[0] == 1);
        let v = 16 / ins[0].dtype.size() as i64;
        self.use_flat = self.flat.is_some() && packed && self.p.n % v == 0;
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if self.p.n == 0 {
            return Ok(());
        }
        self.p.out = outs[0].ptr;
        self.p.a = ins[0].ptr;
        self.p.b = ins[1].ptr;
        if let (Some(f), true) = (self.flat, self.use_flat) {
            if [self.p.out, self.p.a, self.p.b].iter().all(|a| a % 16 == 0) {
                let v = 16 / ins[0].dtype.size();
                return launch(rc.stream, f, grid_for(self.p.n as usize / v), &self.p);
            }
        }
        launch(rc.stream, self.f, grid_for(self.p.n as usize), &self.p)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct UnaryParams {
    out: u64,
    x: u64,
    n: i64,
    op: i32,
    pad: i32,
}
const _: () = assert!(std::mem::size_of::<UnaryParams>() == 32);

pub struct Unary {
    f: Func,
    op: i32,
}

fn unary_code(op: UnaryOp) -> i32 {
    use UnaryOp as U;
    match op {
        U::Exp => 0,
        U::Log => 1,
        U::Sqrt => 2,
        U::Recip => 3,
        U::Abs => 4,
        U::Neg => 5,
        U::Sin => 6,
        U::Cos => 7,
        U::Tan => 8,
        U::Sinh => 9,
        U::Cosh => 10,
        U::Asin => 11,
        U::Acos => 12,
        U::Atan => 13,
        U::Asinh => 14,
        U::Acosh => 15,
        U::Atanh => 16,
        U::Ceil => 17,
        U::Floor => 18,
        U::Erf => 19,
        U::Not => 20,
        U::Sign => 21,
        U::Round => 22,
        U::IsInf => 23,
        U::IsNan => 24,
    }
}

impl Unary {
    pub fn new(b: &Builder<'_>, l: &Layer, op: UnaryOp) -> Result<Self> {
        let dt = input_storage(b, l)[0];
        let name = match (op, dt) {
            (UnaryOp::Not, DataType::Bool) => "ew_not_bool".to_string(),
            (_, DataType::F32 | DataType::F16) => typed("ew_unary", dt),
            (UnaryOp::Abs | UnaryOp::Neg | UnaryOp::Sign, DataType::I32 | DataType::I64) => {
                typed("ew_unary", dt)
            }
            (UnaryOp::Abs | UnaryOp::Sign, DataType::U8) => typed("ew_unary", dt),
            (op, dt) => {
                return Err(Error::Unsupported {
                    backend: "cuda",
                    what: format!("{op:?} of {dt}"),
                })
            }
        };
        Ok(Unary {
            f: b.func(&name)?,
            op: unary_code(op),
        })
    }
}

impl Kernel for Unary {
    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        let n = outs[0].len();
        if n == 0 {
            return Ok(());
        }
        let p = UnaryParams {
            out: outs[0].ptr,
            x: ins[0].ptr,
            n: n as i64,
            op: self.op,
            pad: 0,
        };
        launch(rc.stream, self.f, grid_for(n), &p)
    }
}

/// The kernels' activation code and its two parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActCode {
    pub op: i32,
    pub alpha: f32,
    pub beta: f32,
}

impl ActCode {
    pub const IDENTITY: ActCode = ActCode {
        op: 15,
        alpha: 0.0,
        beta: 0.0,
    };
}

pub fn act_code(a: Activation) -> ActCode {
    let c = |op, alpha, beta| ActCode { op, alpha, beta };
    match a {
        Activation::Relu => c(0, 0.0, 0.0),
        Activation::Sigmoid => c(1, 0.0, 0.0),
        Activation::Tanh => c(2, 0.0, 0.0),
        Activation::LeakyRelu { alpha } => c(3, alpha, 0.0),
        Activation::Elu { alpha } => c(4, alpha, 0.0),
        Activation::Selu { alpha, gamma } => c(5, alpha, gamma),
        Activation::Softsign => c(6, 0.0, 0.0),
        Activation::Softplus { alpha, beta } => c(7, alpha, beta),
        Activation::Clip { min, max } => c(8, min, max),
        Activation::HardSigmoid { alpha, beta } => c(9, alpha, beta),
        Activation::ScaledTanh { alpha, beta } => c(10, alpha, beta),
        Activation::ThresholdedRelu { alpha } => c(11, alpha, 0.0),
        Activation::GeluErf => c(12, 0.0, 0.0),
        Activation::GeluTanh => c(13, 0.0, 0.0),
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ActParams {
    out: u64,
    x: u64,
    n: i64,
    op: i32,
    alpha: f32,
    beta: f32,
    pad: i32,
}
const _: () = assert!(std::mem::size_of::<ActParams>() == 40);

pub struct Act {
    f: Func,
    code: ActCode,
}

impl Act {
    pub fn new(b: &Builder<'_>, l: &Layer, code: ActCode) -> Result<Self> {
        let dt = input_storage(b, l)[0];
        Ok(Act {
            f: b.func(&typed("ew_act", float(dt)?))?,
            code,
        })
    }
}

fn float(dt: DataType) -> Result<DataType> {
    if dt.is_float() {
        Ok(dt)
    } else {
        Err(Error::Unsupported {
            backend: "cuda",
            what: format!("this layer on {dt} data"),
        })
    }
}

impl Kernel for Act {
    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        let n = outs[0].len();
        if n == 0 {
            return Ok(());
        }
        let p = ActParams {
            out: outs[0].ptr,
            x: ins[0].ptr,
            n: n as i64,
            op: self.code.op,
            alpha: self.code.alpha,
            beta: self.code.beta,
            pad: 0,
        };
        launch(rc.stream, self.f, grid_for(n), &p)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct BiasActParams {
    out: u64,
    y: u64,
    bias: u64,
    res: u64,
    n: i64,
    channels: i64,
    inner: i64,
    op: i32,
    alpha: f32,
    beta: f32,
    pad: i32,
    scale: u64,
}
const _: () = assert!(std::mem::size_of::<BiasActParams>() == 80);

/// A convolution's epilogue: `out = act(y + bias[c] + residual)` over an
/// [outer, channels, inner] tensor (in place when `out` is `y`); with a
/// per-channel scale, `act(y * scale[c] + bias[c])`, a Scale layer.
pub struct BiasAct {
    f: Func,
    /// Two elements a thread, where the count and alignment allow.
    f2: Func,
    /// 16 bytes a thread, one bias value for them all (or none).
    fv: Func,
    /// 16 bytes a thread along the bias (inner 1).
    fvr: Func,
    elem: usize,
    pub code: ActCode,
}

impl BiasAct {
    pub fn new(b: &Builder<'_>, dt: DataType, code: ActCode) -> Result<Self> {
        let dt = float(dt)?;
        Ok(BiasAct {
            f: b.func(&typed("ew_bias_act", dt))?,
            f2: b.func(&typed("ew_bias_act2", dt))?,
            fv: b.func(&typed("ew_bias_act_v", dt))?,
            fvr: b.func(&typed("ew_bias_act_vr", dt))?,
            elem: dt.size(),
            code,
        })
    }

    /// `residual` is device memory of `y`'s dims and type, or 0; `y` is
    /// [outer, channels, inner] as stored.
    pub fn enqueue(
        &self,
        rc: &RunCx<'_>,
        y: &Arg,
        (channels, inner): (usize, usize),
        out: u64,
        bias: Option<&DeviceBuf>,
        residual: u64,
    ) -> Result<()> {
        self.enqueue_scaled(rc, y, (channels, inner), out, None, bias, residual)
    }

    /// [`BiasAct::enqueue`] with `y` first multiplied by a float32 `scale`
    /// of `channels` values.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue_scaled(
        &self,
        rc: &RunCx<'_>,
        y: &Arg,
        (channels, inner): (usize, usize),
        out: u64,
        scale: Option<&DeviceBuf>,
        bias: Option<&DeviceBuf>,
        residual: u64,
    ) -> Result<()> {
        let n = y.len();
        if n == 0 {
            return Ok(());
        }
        let p = BiasActParams {
            out,
            y: y.ptr,
            bias: bias.map_or(0, |b| b.ptr),
            res: residual,
            n: n as i64,
            channels: channels.max(1) as i64,
            inner: inner.max(1) as i64,
            op: self.code.op,
            alpha: self.code.alpha,
            beta: self.code.beta,
            pad: 0,
            scale: scale.map_or(0, |s| s.ptr),
        };
        let v = 16 / self.elem;
        if n.is_multiple_of(v) && [out, y.ptr, residual].iter().all(|a| a.is_multiple_of(16)) {
            let (channels, inner) = (p.channels as usize, p.inner as usize);
            if (bias.is_none() && scale.is_none()) || inner.is_multiple_of(v) {
                return launch(rc.stream, self.fv, grid_for(n / v), &p);
            }
            if inner == 1 && channels.is_multiple_of(v) {
                return launch(rc.stream, self.fvr, grid_for(n / v), &p);
            }
        }
        let pair = 2 * self.elem as u64;
        if n.is_multiple_of(2)
            && [out, y.ptr, residual]
                .iter()
                .all(|a| a.is_multiple_of(pair))
        {
            return launch(rc.stream, self.f2, grid_for(n / 2), &p);
        }
        launch(rc.stream, self.f, grid_for(n), &p)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ScaleKParams {
    out: u64,
    x: u64,
    scale: u64,
    shift: u64,
    power: u64,
    n: i64,
    groups: i64,
    inner: i64,
    op: i32,
    alpha: f32,
    beta: f32,
    pad: i32,
}
const _: () = assert!(std::mem::size_of::<ScaleKParams>() == 80);

/// `act((x * scale + shift) ^ power)`. Without a power it runs as the
/// convolution epilogue's kernel with a scale (16 bytes a thread where the
/// dims allow: a BatchNorm and ReLU before a DenseNet convolution), else as
/// the general kernel.
pub struct Scale {
    f: Option<Func>,
    affine: Option<BiasAct>,
    mode: ScaleMode,
    axis: usize,
    /// Coefficients in float32 on the device: scale, shift, power.
    coeff: [Option<(DeviceBuf, usize)>; 3],
    /// [groups, inner], once planned.
    geometry: (usize, usize),
    code: ActCode,
    p: ScaleKParams,
}

impl Scale {
    /// `l` is the Scale layer (its output's type is the storage's).
    pub fn new(b: &Builder<'_>, l: &Layer, p: &ScaleParams) -> Result<Self> {
        let up =
            |id: Option<crate::ir::WeightsId>, what: &str| -> Result<Option<(DeviceBuf, usize)>> {
                id.map(|id| {
                    let t = b.net.weights(id);
                    Ok((b.upload(t, Some(DataType::F32), what)?, t.len()))
                })
                .transpose()
            };
        let code = p.activation.map_or(ActCode::IDENTITY, act_code);
        let affine = if p.power.is_none() {
            Some(BiasAct::new(b, b.storage(l.outputs[0].dtype), code)?)
        } else {
            None
        };
        Ok(Scale {
            f: None,
            affine,
            mode: p.mode,
            axis: p.channel_axis,
            coeff: [
                up(p.scale, "scale")?,
                up(p.shift, "shift")?,
                up(p.power, "power")?,
            ],
            geometry: (1, 1),
            code,
            p: ScaleKParams::default(),
        })
    }
}

impl Kernel for Scale {
    fn plan(&mut self, pc: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let dims = &ins[0].dims;
        let (groups, inner) = match self.mode {
            ScaleMode::Uniform => (1, ins[0].len()),
            ScaleMode::Channel => (dims[self.axis], dims[self.axis + 1..].iter().product()),
            ScaleMode::Elementwise => (dims[self.axis..].iter().product(), 1),
        };
        for c in self.coeff.iter().flatten() {
            if c.1 != groups {
                return Err(Error::Network(format!(
                    "{} coefficients for {groups} groups",
                    c.1
                )));
            }
        }
        self.geometry = (groups.max(1), inner.max(1));
        if self.affine.is_some() {
            return Ok(());
        }
        self.f = Some(super::launch::function(
            pc.gpu,
            &typed("ew_scale", float(ins[0].dtype)?),
        )?);
        self.p = ScaleKParams {
            n: outs[0].len() as i64,
            groups: groups.max(1) as i64,
            inner: inner.max(1) as i64,
            scale: self.coeff[0].as_ref().map_or(0, |c| c.0.ptr),
            shift: self.coeff[1].as_ref().map_or(0, |c| c.0.ptr),
            power: self.coeff[2].as_ref().map_or(0, |c| c.0.ptr),
            op: self.code.op,
            alpha: self.code.alpha,
            beta: self.code.beta,
            ..Default::default()
        };
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if let Some(a) = &self.affine {
            let coeff = |k: usize| self.coeff[k].as_ref().map(|c| &c.0);
            return a.enqueue_scaled(
                rc,
                &ins[0],
                self.geometry,
                outs[0].ptr,
                coeff(0),
                coeff(1),
                0,
            );
        }
        let Some(f) = self.f else {
            return Err(Error::Network(
                "a Scale layer ran before it was planned".into(),
            ));
        };
        if self.p.n == 0 {
            return Ok(());
        }
        self.p.out = outs[0].ptr;
        self.p.x = ins[0].ptr;
        launch(rc.stream, f, grid_for(self.p.n as usize), &self.p)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SelectParams {
    out: u64,
    cond: u64,
    a: u64,
    b: u64,
    n: i64,
    dims: Dims,
    sc: [i64; MAX_RANK],
    sa: [i64; MAX_RANK],
    sb: [i64; MAX_RANK],
}
const _: () = assert!(std::mem::size_of::<SelectParams>() == 304);

pub struct Select {
    f: Func,
    p: SelectParams,
}

impl Select {
    pub fn new(b: &Builder<'_>, l: &Layer) -> Result<Self> {
        let dt = input_storage(b, l)[1];
        Ok(Select {
            f: b.func(&sized("ew_select", dt))?,
            p: SelectParams::default(),
        })
    }
}

impl Kernel for Select {
    fn plan(&mut self, _: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let o = &outs[0].dims;
        self.p.n = outs[0].len() as i64;
        self.p.dims = dims8(o)?;
        self.p.sc = strides8(&broadcast(&ins[0].dims, o));
        self.p.sa = strides8(&broadcast(&ins[1].dims, o));
        self.p.sb = strides8(&broadcast(&ins[2].dims, o));
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if self.p.n == 0 {
            return Ok(());
        }
        self.p.out = outs[0].ptr;
        self.p.cond = ins[0].ptr;
        self.p.a = ins[1].ptr;
        self.p.b = ins[2].ptr;
        launch(rc.stream, self.f, grid_for(self.p.n as usize), &self.p)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CastParams {
    out: u64,
    x: u64,
    n: i64,
    from: i32,
    to: i32,
}
const _: () = assert!(std::mem::size_of::<CastParams>() == 32);

/// The kernels' type code (elementwise.cu's T_*).
pub fn type_code(dt: DataType) -> i32 {
    match dt {
        DataType::F32 => 0,
        DataType::F16 => 1,
        DataType::I32 => 2,
        DataType::I64 => 3,
        DataType::U8 => 4,
        DataType::Bool => 5,
    }
}

/// Cast between storage types (also what converts a float16 plan's
/// inputs and outputs from and to float32).
pub struct Cast {
    f: Func,
}

impl Cast {
    pub fn new(b: &Builder<'_>) -> Result<Self> {
        Ok(Cast {
            f: b.func("ew_cast")?,
        })
    }

    /// Casts `n` elements of `from` at `x` into `to` at `out`.
    pub fn run(
        &self,
        rc_stream: cudarc::driver::sys::CUstream,
        x: u64,
        from: DataType,
        out: u64,
        to: DataType,
        n: usize,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let p = CastParams {
            out,
            x,
            n: n as i64,
            from: type_code(from),
            to: type_code(to),
        };
        launch(rc_stream, self.f, grid_for(n), &p)
    }
}

impl Kernel for Cast {
    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        if ins[0].dtype == outs[0].dtype {
            return super::misc::copy_bytes(rc, &ins[0], &outs[0]);
        }
        self.run(
            rc.stream,
            ins[0].ptr,
            ins[0].dtype,
            outs[0].ptr,
            outs[0].dtype,
            outs[0].len(),
        )
    }
}
