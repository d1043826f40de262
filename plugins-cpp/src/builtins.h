// jetrt's built-in plugins: the descriptors, and the CUDA launchers the
// .cu files define when the library is built with CUDA
// (JETRT_PLUGINS_WITH_CUDA).
#ifndef JETRT_BUILTINS_H
#define JETRT_BUILTINS_H

#include "jetrt_plugin.h"
#include "kernels/grid_sample.h"
#include "kernels/nms.h"
#include "kernels/roi_align.h"

#ifdef __cplusplus
extern "C" {
#endif
// The built-ins as the static library gives them to the engine crate (the
// shared library exports the same list as jetrt_plugin_list).
const jetrt_plugin_descriptor *const *jetrt_builtin_plugin_list(uint32_t *count);
#ifdef __cplusplus
}
#endif

namespace jetrt {
namespace builtin {

#ifdef JETRT_PLUGINS_WITH_CUDA
const bool kWithCuda = true;
#else
const bool kWithCuda = false;
#endif

jetrt_plugin_descriptor nms_descriptor();
jetrt_plugin_descriptor roi_align_descriptor();
jetrt_plugin_descriptor grid_sample_descriptor();

namespace cuda {
// Each launcher enqueues its kernels on `stream` and returns NULL, or what
// failed (a static string).
const char *grid_sample(const kernels::GridSampleParams &p, const float *x, const float *grid, float *y,
                        void *stream);
const char *roi_align(const kernels::RoiAlignParams &p, const float *x, const float *rois, const int64_t *batch,
                      float *y, void *stream);
// Scratch bytes nms() needs.
uint64_t nms_workspace(const kernels::NmsParams &p);
// Writes the selected rows to `out` and their count to *count (host
// memory); synchronizes the stream to learn the count.
const char *nms(const kernels::NmsParams &p, const float *boxes, const float *scores, int64_t *out, int64_t *count,
                void *workspace, uint64_t workspace_size, void *stream);
}  // namespace cuda

}  // namespace builtin
}  // namespace jetrt

#endif
