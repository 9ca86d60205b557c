//! Data plane. See issue 5.
