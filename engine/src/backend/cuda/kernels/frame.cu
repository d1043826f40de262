// Camera frames to a network input on the device: the cpu path's steps
// (engine/src/preprocess.rs: to RGB8 in BT.601 fixed point, bilinear
// resize with half-pixel centres rounded to 8 bits, scale to 0..1,
// normalize, planar RGB or BGR), with every float operation in the same
// order and none fused, so both give the same values.

#define F_RGB 0
#define F_BGR 1
#define F_GRAY 2
#define F_YUYV 3
#define F_NV12 4
#define F_I420 5

struct FrameParams {
  u64 out, src;
  i64 n;  // 3 * oh * ow
  int format, bgr;
  int w, h, ow, oh;
  float mean[3];
  float std[3];
};
static_assert(sizeof(FrameParams) == 72, "FrameParams layout");

__device__ __forceinline__ int clamp255(int x) {
  x = (x + 128) >> 8;
  return x < 0 ? 0 : (x > 255 ? 255 : x);
}

// Channel c (0 R, 1 G, 2 B) of pixel (x, y), as the cpu conversion gives it.
__device__ __forceinline__ int pixel(const FrameParams &p, const u8 *s, int x, int y, int c) {
  switch (p.format) {
  case F_RGB: return s[((i64)y * p.w + x) * 3 + c];
  case F_BGR: return s[((i64)y * p.w + x) * 3 + 2 - c];
  case F_GRAY: return s[(i64)y * p.w + x];
  default: break;
  }
  int Y, U, V;
  if (p.format == F_YUYV) {
    const u8 *q = s + (i64)y * ((p.w + 1) / 2 * 4) + (x / 2) * 4;
    Y = q[(x % 2) * 2];
    U = q[1];
    V = q[3];
  } else {
    i64 cw = (p.w + 1) / 2, ch = (p.h + 1) / 2;
    i64 ci = (y / 2) * cw + x / 2;
    const u8 *chroma = s + (i64)p.w * p.h;
    Y = s[(i64)y * p.w + x];
    if (p.format == F_NV12) {
      U = chroma[2 * ci];
      V = chroma[2 * ci + 1];
    } else {
      U = chroma[ci];
      V = chroma[cw * ch + ci];
    }
  }
  int cy = (Y - 16 < 0 ? 0 : Y - 16) * 298, d = U - 128, e = V - 128;
  switch (c) {
  case 0: return clamp255(cy + 409 * e);
  case 1: return clamp255(cy - 100 * d - 208 * e);
  default: return clamp255(cy + 516 * d);
  }
}

template <typename T>
__device__ void frame_to_input(const FrameParams &p) {
  const u8 *s = (const u8 *)p.src;
  i64 plane = (i64)p.oh * p.ow;
  GRID_STRIDE(i, p.n) {
    int c = (int)(i / plane);
    int y = (int)((i % plane) / p.ow);
    int x = (int)(i % p.ow);
    int sc = p.bgr ? 2 - c : c;
    int v;
    if (p.w == p.ow && p.h == p.oh) {
      v = pixel(p, s, x, y, sc);
    } else {
      float sx = __fdiv_rn((float)p.w, (float)p.ow);
      float sy = __fdiv_rn((float)p.h, (float)p.oh);
      float fy = __fadd_rn(__fmul_rn(__fadd_rn((float)y, 0.5f), sy), -0.5f);
      fy = fminf(fmaxf(fy, 0.0f), (float)(p.h - 1));
      float fx = __fadd_rn(__fmul_rn(__fadd_rn((float)x, 0.5f), sx), -0.5f);
      fx = fminf(fmaxf(fx, 0.0f), (float)(p.w - 1));
      int y0 = (int)floorf(fy), x0 = (int)floorf(fx);
      int y1 = y0 + 1 < p.h ? y0 + 1 : p.h - 1;
      int x1 = x0 + 1 < p.w ? x0 + 1 : p.w - 1;
      float wy = __fsub_rn(fy, (float)y0), wx = __fsub_rn(fx, (float)x0);
      float top = __fadd_rn(__fmul_rn((float)pixel(p, s, x0, y0, sc), __fsub_rn(1.0f, wx)),
                            __fmul_rn((float)pixel(p, s, x1, y0, sc), wx));
      float bot = __fadd_rn(__fmul_rn((float)pixel(p, s, x0, y1, sc), __fsub_rn(1.0f, wx)),
                            __fmul_rn((float)pixel(p, s, x1, y1, sc), wx));
      float r = roundf(__fadd_rn(__fmul_rn(top, __fsub_rn(1.0f, wy)), __fmul_rn(bot, wy)));
      v = (int)fminf(fmaxf(r, 0.0f), 255.0f);
    }
    float f = __fdiv_rn(__fsub_rn(__fdiv_rn((float)v, 255.0f), p.mean[c]), p.std[c]);
    stf((T *)p.out, i, f);
  }
}

extern "C" __global__ void frame_to_input_f32(FrameParams p) { frame_to_input<float>(p); }
extern "C" __global__ void frame_to_input_f16(FrameParams p) { frame_to_input<u16>(p); }
