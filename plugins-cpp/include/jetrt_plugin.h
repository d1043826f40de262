/*
 * jetrt plugin C ABI.
 *
 * A plugin library adds layer implementations to jetrt through plain C
 * functions, so that libraries built by any C or C++ compiler (with or
 * without CUDA) load into any jetrt binary. The ABI is versioned: jetrt
 * refuses a library whose jetrt_plugin_abi_version() differs from its own.
 */
#ifndef JETRT_PLUGIN_H
#define JETRT_PLUGIN_H

#include <stdint.h>

#define JETRT_PLUGIN_ABI_VERSION 1u

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version the library was built against: JETRT_PLUGIN_ABI_VERSION. */
uint32_t jetrt_plugin_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* JETRT_PLUGIN_H */
