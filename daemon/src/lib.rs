//! jetrtd, the on-device daemon. Not yet implemented: the binaries say so and
//! exit with status 1.
