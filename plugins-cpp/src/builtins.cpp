// The list of built-in plugins.
#include "builtins.h"

extern "C" const jetrt_plugin_descriptor *const *jetrt_builtin_plugin_list(uint32_t *count) {
  // Function-local statics: built on first use, whatever the order in which
  // the host runs static initializers of a library linked into it.
  static const jetrt_plugin_descriptor descriptors[] = {
      jetrt::builtin::nms_descriptor(),
      jetrt::builtin::roi_align_descriptor(),
      jetrt::builtin::grid_sample_descriptor(),
  };
  static const jetrt_plugin_descriptor *const list[] = {&descriptors[0], &descriptors[1], &descriptors[2]};
  *count = static_cast<uint32_t>(sizeof(list) / sizeof(list[0]));
  return list;
}
