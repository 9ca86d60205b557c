//! Admin process. See issue 6.
