//! Meilisearch-compatible test node. See issue 3.
fn main() {}
