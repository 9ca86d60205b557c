//! Merge of shard search responses. See issue 4.
