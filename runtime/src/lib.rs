//! Data plane. See issue 5.
pub mod http;
