//! The built-in plugins, from the static library `build.rs` links in.

use super::ffi;

extern "C" {
    /// Defined in plugins-cpp/src/builtins.cpp.
    fn jetrt_builtin_plugin_list(count: *mut u32) -> *const *const ffi::Descriptor;
}

/// The built-in descriptors: a static array in the linked library.
pub(super) fn list() -> (*const *const ffi::Descriptor, u32) {
    let mut count = 0u32;
    // SAFETY: the function is defined by the statically linked built-in
    // library with this signature; it writes the count through a valid
    // pointer and returns a pointer to a static array of that many entries.
    let list = unsafe { jetrt_builtin_plugin_list(&mut count) };
    (list, count)
}
