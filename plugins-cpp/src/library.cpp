// The exports of the shared built-in library (libjetrt_plugins.so), which a
// jetrt binary loads with --plugin: with CUDA kernels when it was built
// where nvcc was found.
#include "builtins.h"

extern "C" JETRT_PLUGIN_EXPORT uint32_t jetrt_plugin_abi_version(void) { return JETRT_PLUGIN_ABI_VERSION; }

extern "C" JETRT_PLUGIN_EXPORT const jetrt_plugin_descriptor *const *jetrt_plugin_list(uint32_t *count) {
  return jetrt_builtin_plugin_list(count);
}
