//! Typed identifiers. They are thin newtypes so that a shard number can never be passed where
//! a task uid is expected; all are `Copy` except [`NodeId`], which is a stable operator-chosen
//! name (`meili-0`) that is never reused.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A shard of an index's hash space: `0..S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

/// A replica group: each group holds a complete copy of every shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(pub u32);

/// A Miroir task uid: dense, monotonic, fits in `u32` (SDKs parse it as a `u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskUid(pub u32);

/// A node's stable id (e.g. `meili-0`). Cheap to clone: routing tables hold many copies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub Arc<str>);

impl NodeId {
    pub fn new(id: impl AsRef<str>) -> Self {
        NodeId(Arc::from(id.as_ref()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        NodeId::new(s)
    }
}

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_inner!(ShardId, GroupId, TaskUid, NodeId);
