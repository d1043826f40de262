/* A plugin library that claims ABI version 1: jetrt must refuse to load it
 * with a message naming both versions. */
#include "jetrt_plugin.h"

JETRT_PLUGIN_EXPORT uint32_t jetrt_plugin_abi_version(void) { return 1u; }

JETRT_PLUGIN_EXPORT const jetrt_plugin_descriptor *const *jetrt_plugin_list(uint32_t *count) {
  *count = 0;
  return 0;
}
