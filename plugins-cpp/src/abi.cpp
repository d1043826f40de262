// The entry point every jetrt plugin library exports.
#include "jetrt_plugin.h"

extern "C" uint32_t jetrt_plugin_abi_version(void) { return JETRT_PLUGIN_ABI_VERSION; }
