//! End-to-end test support: spawning binaries, free ports, HTTP helpers.
