//! Pure encoding and query logic shared by both backends: the task envelope, filter matching,
//! pagination, prune selection and key helpers. No I/O here, so all of it is unit-tested.
//!
//! # Task envelope (format version 1)
//!
//! One value per task (an LMDB value under the big-endian uid, a Redis hash field). Its
//! binary **head** holds every field a `GET /tasks` filter looks at, so a scan decides whether
//! a task matches without parsing JSON, and the Redis scan script returns only the head
//! (`head length` bytes) so scans do not ship bodies and cached views over the network. Only
//! tasks that land on the page get their JSON body parsed. Integers are big-endian.
//!
//! ```text
//! 0      version (1)
//! 1      status code      <- the Redis Lua scripts read this byte: code >= 2 means terminal
//! 2      type code
//! 3      flags: 1 index uid, 2 startedAt, 4 finishedAt, 8 canceledBy, 16 terminal view
//! 4..6   head length (u16): bytes from 0 to the end of the index uid
//! 6..14  enqueuedAt, i64 nanoseconds since the Unix epoch
//!        [i64 startedAt ns] [i64 finishedAt ns] [u32 canceledBy]      (when flagged)
//!        [u16 length, index uid UTF-8]                                (when flagged)
//!        ---- end of head ----
//!        u32 length, body JSON {"nodeTasks","failedNodes","details"}
//!        [u32 length, cached terminal view]                           (when flagged)
//! ```
//!
//! A hand-written layout rather than a serde format: the status byte and the head length
//! sit at fixed offsets for the Lua scripts, and the codes must stay stable across releases.

use super::{
    FailedNode, NewTask, NodeTask, StoreError, TaskFilter, TaskPage, TaskQuery, TaskRecord,
    TaskState, TaskStatus, TaskType,
};
use miroir_core::ids::TaskUid;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub const FORMAT_VERSION: u8 = 1;
/// Byte offset of the status code in an envelope (0-based; Lua's `string.byte` is 1-based).
pub const STATUS_OFFSET: usize = 1;
/// Byte offset of the u16 head length (the Redis scan script reads it).
pub const HEAD_LEN_OFFSET: usize = 4;
/// Longest index uid stored (Meilisearch allows 400 bytes); keeps the head length in a u16.
const MAX_INDEX_UID_LEN: usize = 4096;

const F_INDEX: u8 = 1;
const F_STARTED: u8 = 2;
const F_FINISHED: u8 = 4;
const F_CANCELED_BY: u8 = 8;
const F_TERMINAL: u8 = 16;

/// LMDB's default maximum key size; both backends enforce it on metadata keys so that a key
/// accepted by one backend is accepted by the other.
pub const MAX_META_KEY_LEN: usize = 511;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BodyRef<'a> {
    node_tasks: &'a [NodeTask],
    failed_nodes: &'a [FailedNode],
    details: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_metadata: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BodyOwned {
    node_tasks: Vec<NodeTask>,
    failed_nodes: Vec<FailedNode>,
    details: serde_json::Value,
    /// Absent in envelopes written before it existed.
    #[serde(default)]
    custom_metadata: Option<String>,
}

fn corrupt(reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: "task envelope".into(),
        reason: reason.into(),
    }
}

/// Nanoseconds since the epoch; `i64` covers 1677–2262.
pub fn to_nanos(t: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| {
        StoreError::InvalidValue(format!("timestamp {t} is outside the storable range"))
    })
}

fn from_nanos(ns: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).map_err(|e| corrupt(e.to_string()))
}

/// Encodes a task (without its uid: the key carries it).
pub fn encode(
    index_uid: Option<&str>,
    task_type: TaskType,
    enqueued_at: OffsetDateTime,
    state: &TaskState,
) -> Result<Vec<u8>, StoreError> {
    let body = serde_json::to_vec(&BodyRef {
        node_tasks: &state.node_tasks,
        failed_nodes: &state.failed_nodes,
        details: &state.details,
        custom_metadata: state.custom_metadata.as_deref(),
    })
    .map_err(|e| StoreError::InvalidValue(format!("task details are not serialisable: {e}")))?;
    let body_len = u32::try_from(body.len())
        .map_err(|_| StoreError::InvalidValue("task body exceeds 4 GiB".into()))?;

    let mut flags = 0u8;
    let mut out = Vec::with_capacity(64 + body.len());
    out.extend_from_slice(&[
        FORMAT_VERSION,
        state.status.code(),
        task_type.code(),
        0,
        0,
        0,
    ]);
    out.extend_from_slice(&to_nanos(enqueued_at)?.to_be_bytes());
    if let Some(t) = state.started_at {
        flags |= F_STARTED;
        out.extend_from_slice(&to_nanos(t)?.to_be_bytes());
    }
    if let Some(t) = state.finished_at {
        flags |= F_FINISHED;
        out.extend_from_slice(&to_nanos(t)?.to_be_bytes());
    }
    if let Some(c) = state.canceled_by {
        flags |= F_CANCELED_BY;
        out.extend_from_slice(&c.0.to_be_bytes());
    }
    if let Some(index) = index_uid {
        flags |= F_INDEX;
        if index.len() > MAX_INDEX_UID_LEN {
            return Err(StoreError::InvalidValue(format!(
                "index uid longer than {MAX_INDEX_UID_LEN} bytes"
            )));
        }
        out.extend_from_slice(&(index.len() as u16).to_be_bytes());
        out.extend_from_slice(index.as_bytes());
    }
    // At most 6 + 8 + 8 + 8 + 4 + 2 + MAX_INDEX_UID_LEN bytes: fits.
    let head_len = out.len() as u16;
    out[HEAD_LEN_OFFSET..HEAD_LEN_OFFSET + 2].copy_from_slice(&head_len.to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&body);
    if let Some(view) = &state.terminal_view {
        flags |= F_TERMINAL;
        let len = u32::try_from(view.len())
            .map_err(|_| StoreError::InvalidValue("terminal view exceeds 4 GiB".into()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(view);
    }
    out[3] = flags;
    Ok(out)
}

/// Encodes a new task.
pub fn encode_new(task: &NewTask) -> Result<Vec<u8>, StoreError> {
    encode(
        task.index_uid.as_deref(),
        task.task_type,
        task.enqueued_at,
        &task.state,
    )
}

/// Re-encodes a stored task with a new state, keeping its immutable fields.
pub fn encode_update(stored: &[u8], state: &TaskState) -> Result<Vec<u8>, StoreError> {
    let head = Head::decode(stored)?;
    encode(
        head.index_uid,
        head.task_type,
        from_nanos(head.enqueued_ns)?,
        state,
    )
}

/// The decoded head of an envelope, borrowing from it. Cheap: no allocation, no JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Head<'a> {
    pub status: TaskStatus,
    pub task_type: TaskType,
    pub index_uid: Option<&'a str>,
    pub enqueued_ns: i64,
    pub started_ns: Option<i64>,
    pub finished_ns: Option<i64>,
    pub canceled_by: Option<u32>,
    /// Flags of the optional parts after the head (only the terminal-view bit matters there).
    flags: u8,
}

/// A whole decoded envelope: head, JSON body, cached terminal view.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    pub head: Head<'a>,
    body: &'a [u8],
    terminal_view: Option<&'a [u8]>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| corrupt("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
}

impl<'a> Head<'a> {
    /// Decodes the head at the start of `buf`. Whatever follows the head is ignored, so this
    /// accepts a whole envelope as well as the head-only prefix the Redis scan returns.
    pub fn decode(buf: &'a [u8]) -> Result<Head<'a>, StoreError> {
        Self::read(&mut Reader { buf, pos: 0 })
    }

    fn read(r: &mut Reader<'a>) -> Result<Head<'a>, StoreError> {
        let [version, status, ty, flags] = r.array::<4>()?;
        if version != FORMAT_VERSION {
            return Err(corrupt(format!("unknown format version {version}")));
        }
        let status = TaskStatus::from_code(status).ok_or_else(|| corrupt("unknown status code"))?;
        let task_type = TaskType::from_code(ty).ok_or_else(|| corrupt("unknown type code"))?;
        let head_len = usize::from(r.u16()?);
        let enqueued_ns = r.i64()?;
        let started_ns = if flags & F_STARTED != 0 {
            Some(r.i64()?)
        } else {
            None
        };
        let finished_ns = if flags & F_FINISHED != 0 {
            Some(r.i64()?)
        } else {
            None
        };
        let canceled_by = if flags & F_CANCELED_BY != 0 {
            Some(r.u32()?)
        } else {
            None
        };
        let index_uid = if flags & F_INDEX != 0 {
            let len = r.u16()?;
            let bytes = r.take(usize::from(len))?;
            Some(std::str::from_utf8(bytes).map_err(|_| corrupt("index uid is not UTF-8"))?)
        } else {
            None
        };
        if r.pos != head_len {
            return Err(corrupt("head length does not match its fields"));
        }
        Ok(Head {
            status,
            task_type,
            index_uid,
            enqueued_ns,
            started_ns,
            finished_ns,
            canceled_by,
            flags,
        })
    }
}

impl<'a> Envelope<'a> {
    /// Decodes a whole envelope; trailing or missing bytes are corruption.
    pub fn decode(buf: &'a [u8]) -> Result<Envelope<'a>, StoreError> {
        let mut r = Reader { buf, pos: 0 };
        let head = Head::read(&mut r)?;
        let body_len = r.u32()?;
        let body = r.take(body_len as usize)?;
        let terminal_view = if head.flags & F_TERMINAL != 0 {
            let len = r.u32()?;
            Some(r.take(len as usize)?)
        } else {
            None
        };
        if r.pos != buf.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Envelope {
            head,
            body,
            terminal_view,
        })
    }

    /// The full record (parses the JSON body).
    pub fn to_record(&self, uid: TaskUid) -> Result<TaskRecord, StoreError> {
        let body: BodyOwned =
            serde_json::from_slice(self.body).map_err(|e| corrupt(format!("body: {e}")))?;
        let h = &self.head;
        Ok(TaskRecord {
            uid,
            index_uid: h.index_uid.map(str::to_owned),
            task_type: h.task_type,
            enqueued_at: from_nanos(h.enqueued_ns)?,
            state: TaskState {
                status: h.status,
                started_at: h.started_ns.map(from_nanos).transpose()?,
                finished_at: h.finished_ns.map(from_nanos).transpose()?,
                canceled_by: h.canceled_by.map(TaskUid),
                node_tasks: body.node_tasks,
                failed_nodes: body.failed_nodes,
                details: body.details,
                terminal_view: self.terminal_view.map(<[u8]>::to_vec),
                custom_metadata: body.custom_metadata,
            },
        })
    }
}

/// Decodes a whole envelope into a record.
pub fn decode(uid: TaskUid, buf: &[u8]) -> Result<TaskRecord, StoreError> {
    Envelope::decode(buf)?.to_record(uid)
}

/// A [`TaskFilter`] with its date bounds converted to nanoseconds once, for scanning.
#[derive(Debug, Clone)]
pub struct CompiledFilter<'f> {
    filter: &'f TaskFilter,
    // (exclusive lower bound, exclusive upper bound) per timestamp; i128 so that any
    // `OffsetDateTime` a client sends compares correctly with stored i64 values.
    enqueued: (Option<i128>, Option<i128>),
    started: (Option<i128>, Option<i128>),
    finished: (Option<i128>, Option<i128>),
}

fn ns(t: Option<OffsetDateTime>) -> Option<i128> {
    t.map(OffsetDateTime::unix_timestamp_nanos)
}

fn within(value: i64, (after, before): (Option<i128>, Option<i128>)) -> bool {
    let v = i128::from(value);
    after.is_none_or(|a| v > a) && before.is_none_or(|b| v < b)
}

fn optional_within(value: Option<i64>, bounds: (Option<i128>, Option<i128>)) -> bool {
    match value {
        Some(v) => within(v, bounds),
        None => bounds.0.is_none() && bounds.1.is_none(),
    }
}

fn allowed<T: PartialEq>(list: &Option<Vec<T>>, value: &T) -> bool {
    list.as_ref().is_none_or(|l| l.contains(value))
}

impl<'f> CompiledFilter<'f> {
    pub fn new(filter: &'f TaskFilter) -> Self {
        CompiledFilter {
            filter,
            enqueued: (ns(filter.after_enqueued_at), ns(filter.before_enqueued_at)),
            started: (ns(filter.after_started_at), ns(filter.before_started_at)),
            finished: (ns(filter.after_finished_at), ns(filter.before_finished_at)),
        }
    }

    pub fn matches(&self, uid: TaskUid, head: &Head<'_>) -> bool {
        let f = self.filter;
        allowed(&f.uids, &uid)
            && allowed(&f.statuses, &head.status)
            && allowed(&f.types, &head.task_type)
            && f.index_uids
                .as_ref()
                .is_none_or(|l| head.index_uid.is_some_and(|i| l.iter().any(|x| x == i)))
            && f.canceled_by
                .as_ref()
                .is_none_or(|l| head.canceled_by.is_some_and(|c| l.contains(&TaskUid(c))))
            && within(head.enqueued_ns, self.enqueued)
            && optional_within(head.started_ns, self.started)
            && optional_within(head.finished_ns, self.finished)
    }
}

/// Builds one [`TaskPage`] from tasks fed in result order (descending uid, or ascending with
/// `reverse`). Backends feed the candidates their [`ScanPlan`] names: every candidate (so the
/// counted `total` is exact) or, for [`ScanPlan::Window`], only the window from `from` until
/// [`PageBuilder::is_done`], taking `total` from their task count.
///
/// Two-phase so that a backend can scan heads only: [`PageBuilder::consider`] says whether a
/// task belongs on the page, the backend then [`PageBuilder::push`]es its full record (LMDB at
/// once, Redis after one `HMGET` of the page). [`PageBuilder::offer`] does both from a whole
/// envelope.
pub struct PageBuilder<'q> {
    query: &'q TaskQuery,
    filter: CompiledFilter<'q>,
    total: u64,
    picked: usize,
    tasks: Vec<TaskRecord>,
    next: Option<TaskUid>,
}

impl<'q> PageBuilder<'q> {
    pub fn new(query: &'q TaskQuery) -> Self {
        PageBuilder {
            query,
            filter: CompiledFilter::new(&query.filter),
            total: 0,
            picked: 0,
            tasks: Vec::new(),
            next: None,
        }
    }

    /// Whether the page and its `next` are complete (more input can only change `total`).
    pub fn is_done(&self) -> bool {
        self.next.is_some()
    }

    /// How many candidates a window walk needs at most: the page plus one for `next`.
    pub fn window_len(&self) -> usize {
        self.query.limit as usize + 1
    }

    fn in_window(&self, uid: TaskUid) -> bool {
        match (self.query.from, self.query.reverse) {
            (None, _) => true,
            (Some(from), false) => uid <= from,
            (Some(from), true) => uid >= from,
        }
    }

    /// Considers the next task in result order; `true` when it belongs on the page (the
    /// caller then pushes its record, in the same order).
    pub fn consider(&mut self, uid: TaskUid, head: &Head<'_>) -> bool {
        if !self.filter.matches(uid, head) {
            return false;
        }
        self.total += 1;
        if !self.in_window(uid) || self.next.is_some() {
            return false;
        }
        if self.picked < self.query.limit as usize {
            self.picked += 1;
            true
        } else {
            self.next = Some(uid);
            false
        }
    }

    pub fn push(&mut self, record: TaskRecord) {
        self.tasks.push(record);
    }

    /// [`PageBuilder::consider`] and [`PageBuilder::push`] from a whole envelope; parses the
    /// body only when the task lands on the page.
    pub fn offer(&mut self, uid: TaskUid, envelope: &[u8]) -> Result<(), StoreError> {
        if self.consider(uid, &Head::decode(envelope)?) {
            self.push(decode(uid, envelope)?);
        }
        Ok(())
    }

    /// The page; `total_override` replaces the counted total ([`ScanPlan::Window`]).
    pub fn finish(self, total_override: Option<u64>) -> TaskPage {
        TaskPage {
            tasks: self.tasks,
            total: total_override.unwrap_or(self.total),
            next: self.next,
        }
    }
}

/// How a backend answers a [`TaskQuery`], cheapest applicable first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanPlan {
    /// A `uids` filter: fetch just these (deduplicated, in result order); other constraints
    /// still apply through the [`PageBuilder`].
    Uids(Vec<TaskUid>),
    /// No constraint: walk from `from` until the page and `next` are known; `total` is the
    /// task count.
    Window,
    /// A `statuses` filter naming only enqueued/processing: only unfinished tasks can match,
    /// so walk the unfinished-task index (every such task is in it) instead of every task.
    Unfinished,
    /// An `indexUids` filter: only these indexes' tasks can match, so walk their per-index
    /// uid sets (deduplicated names) and merge them in result order.
    Indexes(Vec<String>),
    /// Walk every task (a filtered `total` needs them all); envelope heads keep it cheap.
    Full,
}

pub fn plan(query: &TaskQuery) -> ScanPlan {
    let f = &query.filter;
    if let Some(uids) = &f.uids {
        let mut uids = uids.clone();
        uids.sort_unstable();
        uids.dedup();
        if !query.reverse {
            uids.reverse();
        }
        return ScanPlan::Uids(uids);
    }
    if *f == TaskFilter::default() {
        return ScanPlan::Window;
    }
    // Unfinished first: in-flight tasks are usually far fewer than one index's history.
    match (&f.statuses, &f.index_uids) {
        (Some(s), _) if s.iter().all(|s| !s.is_terminal()) => ScanPlan::Unfinished,
        (_, Some(indexes)) => {
            let mut indexes = indexes.clone();
            indexes.sort_unstable();
            indexes.dedup();
            ScanPlan::Indexes(indexes)
        }
        _ => ScanPlan::Full,
    }
}

/// Sorts merged candidates (from several per-index sets) into result order.
pub fn sort_result_order<T>(candidates: &mut [(TaskUid, T)], reverse: bool) {
    if reverse {
        candidates.sort_unstable_by_key(|(uid, _)| *uid);
    } else {
        candidates.sort_unstable_by_key(|(uid, _)| std::cmp::Reverse(*uid));
    }
}

/// The LMDB per-index key prefix: the index uid's length (u16) then its bytes. The length makes
/// prefixes unambiguous (`movies` never matches the keys of `movies2`).
pub fn index_prefix(index_uid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + index_uid.len() + 4);
    k.extend_from_slice(&(index_uid.len() as u16).to_be_bytes());
    k.extend_from_slice(index_uid.as_bytes());
    k
}

/// The LMDB per-index key of a task: [`index_prefix`] then the big-endian uid, so one index's
/// keys iterate in uid order.
pub fn index_key(index_uid: &str, uid: TaskUid) -> Vec<u8> {
    let mut k = index_prefix(index_uid);
    k.extend_from_slice(&uid.0.to_be_bytes());
    k
}

/// The uid at the end of an LMDB per-index key.
pub fn uid_of_index_key(key: &[u8]) -> Result<TaskUid, StoreError> {
    key.len()
        .checked_sub(4)
        .and_then(|at| key[at..].try_into().ok())
        .map(|b| TaskUid(u32::from_be_bytes(b)))
        .ok_or_else(|| StoreError::Corrupt {
            what: "index key".into(),
            reason: "too short".into(),
        })
}

/// Given `(uid, status)` of every task in ascending uid order, the uids `prune` deletes: the
/// oldest terminal tasks beyond the `max_terminal` newest ones.
pub fn prune_victims(
    tasks: impl IntoIterator<Item = (TaskUid, TaskStatus)>,
    max_terminal: u64,
) -> Vec<TaskUid> {
    let mut terminal: Vec<TaskUid> = tasks
        .into_iter()
        .filter(|(_, s)| s.is_terminal())
        .map(|(u, _)| u)
        .collect();
    let excess = (terminal.len() as u64).saturating_sub(max_terminal);
    terminal.truncate(excess as usize);
    terminal
}

/// The status of an envelope without decoding the rest (prune scans).
pub fn status_of(envelope: &[u8]) -> Result<TaskStatus, StoreError> {
    match envelope.first() {
        Some(&FORMAT_VERSION) => {}
        _ => return Err(corrupt("unknown format version")),
    }
    envelope
        .get(STATUS_OFFSET)
        .and_then(|&c| TaskStatus::from_code(c))
        .ok_or_else(|| corrupt("unknown status code"))
}

/// The smallest byte string greater than every string starting with `prefix`, or `None`
/// when there is none (empty prefix, or all `0xff`): the exclusive end of a prefix range.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last != 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

pub fn check_meta_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_META_KEY_LEN {
        return Err(StoreError::InvalidKey(format!(
            "metadata keys must be 1..={MAX_META_KEY_LEN} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_core::ids::NodeId;
    use proptest::prelude::*;
    use serde_json::json;

    fn t(ns: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).unwrap()
    }

    fn sample_state() -> TaskState {
        TaskState {
            status: TaskStatus::Failed,
            started_at: Some(t(1_700_000_000_123_456_789)),
            finished_at: Some(t(1_700_000_001_000_000_001)),
            canceled_by: Some(TaskUid(9)),
            node_tasks: vec![NodeTask {
                node: NodeId::new("meili-0"),
                task_uid: 12,
            }],
            failed_nodes: vec![FailedNode {
                node: NodeId::new("meili-1"),
                error: json!({"code": "index_not_found"}),
            }],
            details: json!({"receivedDocuments": 3}),
            terminal_view: Some(b"{\"uid\":4}".to_vec()),
            custom_metadata: Some("batch \"7\" é".into()),
        }
    }

    #[test]
    fn round_trips_a_full_record() {
        let state = sample_state();
        let env = encode(Some("movies"), TaskType::SettingsUpdate, t(-5), &state).unwrap();
        assert_eq!(env[STATUS_OFFSET], TaskStatus::Failed.code());
        let rec = decode(TaskUid(4), &env).unwrap();
        assert_eq!(rec.uid, TaskUid(4));
        assert_eq!(rec.index_uid.as_deref(), Some("movies"));
        assert_eq!(rec.task_type, TaskType::SettingsUpdate);
        assert_eq!(rec.enqueued_at, t(-5));
        assert_eq!(rec.state, state);
    }

    #[test]
    fn round_trips_a_minimal_record() {
        let state = TaskState::enqueued(vec![], vec![], json!(null));
        let env = encode(None, TaskType::DumpCreation, t(0), &state).unwrap();
        let rec = decode(TaskUid(0), &env).unwrap();
        assert_eq!(rec.index_uid, None);
        assert_eq!(rec.state, state);
    }

    #[test]
    fn rejects_damaged_envelopes() {
        let env = encode(Some("i"), TaskType::IndexCreation, t(1), &sample_state()).unwrap();
        for cut in 0..env.len() {
            assert!(
                Envelope::decode(&env[..cut]).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
        let mut longer = env.clone();
        longer.push(0);
        assert!(Envelope::decode(&longer).is_err());
        let mut bad_version = env.clone();
        bad_version[0] = 2;
        assert!(Envelope::decode(&bad_version).is_err());
        let mut bad_status = env.clone();
        bad_status[STATUS_OFFSET] = 200;
        assert!(Envelope::decode(&bad_status).is_err());
        let mut bad_head_len = env;
        bad_head_len[HEAD_LEN_OFFSET + 1] ^= 1;
        assert!(Head::decode(&bad_head_len).is_err());
    }

    #[test]
    fn head_prefix_decodes_alone() {
        // The Redis scan script returns `env[..head_len]`, reading the length as Lua does.
        let env = encode(Some("movies"), TaskType::IndexSwap, t(3), &sample_state()).unwrap();
        let head_len =
            usize::from(env[HEAD_LEN_OFFSET]) * 256 + usize::from(env[HEAD_LEN_OFFSET + 1]);
        let head = Head::decode(&env[..head_len]).unwrap();
        assert_eq!(head, Envelope::decode(&env).unwrap().head);
        assert_eq!(head.index_uid, Some("movies"));
        assert_eq!(status_of(&env[..head_len]).unwrap(), TaskStatus::Failed);
        assert!(Head::decode(&env[..head_len - 1]).is_err());
    }

    #[test]
    fn update_keeps_immutable_fields() {
        let env = encode(Some("books"), TaskType::IndexSwap, t(77), &sample_state()).unwrap();
        let new_state = TaskState::enqueued(vec![], vec![], json!({"a": 1}));
        let rec = decode(TaskUid(1), &encode_update(&env, &new_state).unwrap()).unwrap();
        assert_eq!(rec.index_uid.as_deref(), Some("books"));
        assert_eq!(rec.task_type, TaskType::IndexSwap);
        assert_eq!(rec.enqueued_at, t(77));
        assert_eq!(rec.state, new_state);
    }

    #[test]
    fn codes_are_stable_and_terminal_codes_are_last() {
        // On-disk codes: changing these breaks stored data and the Lua `>= 2` test.
        let status_codes: Vec<u8> = TaskStatus::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(status_codes, [0, 1, 2, 3, 4]);
        for s in TaskStatus::ALL {
            assert_eq!(s.is_terminal(), s.code() >= 2);
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(TaskType::DocumentAdditionOrUpdate.code(), 4);
        for (i, ty) in TaskType::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(ty.code()), i);
            assert_eq!(TaskType::from_code(ty.code()), Some(ty));
            assert_eq!(TaskType::parse(ty.as_str()), Some(ty));
            assert_eq!(serde_json::to_value(ty).unwrap(), json!(ty.as_str()));
        }
        assert_eq!(TaskType::from_code(TaskType::ALL.len() as u8), None);
    }

    fn head_env(
        status: TaskStatus,
        index: Option<&str>,
        enq: i64,
        started: Option<i64>,
    ) -> Vec<u8> {
        let mut state = TaskState::enqueued(vec![], vec![], json!({}));
        state.status = status;
        state.started_at = started.map(t);
        encode(index, TaskType::DocumentAdditionOrUpdate, t(enq), &state).unwrap()
    }

    #[test]
    fn filters_follow_meilisearch_semantics() {
        let env = head_env(TaskStatus::Processing, Some("movies"), 100, Some(200));
        let head = Head::decode(&env).unwrap();
        let m = |f: TaskFilter| CompiledFilter::new(&f).matches(TaskUid(3), &head);

        assert!(m(TaskFilter::default()));
        assert!(m(TaskFilter {
            uids: Some(vec![TaskUid(1), TaskUid(3)]),
            ..Default::default()
        }));
        assert!(!m(TaskFilter {
            uids: Some(vec![]),
            ..Default::default()
        }));
        assert!(m(TaskFilter {
            statuses: Some(vec![TaskStatus::Processing]),
            ..Default::default()
        }));
        assert!(!m(TaskFilter {
            statuses: Some(vec![TaskStatus::Enqueued]),
            ..Default::default()
        }));
        assert!(!m(TaskFilter {
            types: Some(vec![TaskType::IndexCreation]),
            ..Default::default()
        }));
        assert!(m(TaskFilter {
            index_uids: Some(vec!["movies".into()]),
            ..Default::default()
        }));
        assert!(!m(TaskFilter {
            index_uids: Some(vec!["movie".into()]),
            ..Default::default()
        }));
        assert!(!m(TaskFilter {
            canceled_by: Some(vec![TaskUid(3)]),
            ..Default::default()
        }));
        // Date bounds are exclusive.
        assert!(!m(TaskFilter {
            after_enqueued_at: Some(t(100)),
            ..Default::default()
        }));
        assert!(m(TaskFilter {
            after_enqueued_at: Some(t(99)),
            ..Default::default()
        }));
        assert!(!m(TaskFilter {
            before_enqueued_at: Some(t(100)),
            ..Default::default()
        }));
        assert!(m(TaskFilter {
            before_enqueued_at: Some(t(101)),
            ..Default::default()
        }));
        assert!(m(TaskFilter {
            before_started_at: Some(t(201)),
            ..Default::default()
        }));
        // No finishedAt: never matches a finishedAt bound.
        assert!(!m(TaskFilter {
            before_finished_at: Some(t(i64::MAX)),
            ..Default::default()
        }));

        let no_index = head_env(TaskStatus::Enqueued, None, 0, None);
        let head = Head::decode(&no_index).unwrap();
        let f = TaskFilter {
            index_uids: Some(vec!["movies".into()]),
            ..Default::default()
        };
        assert!(!CompiledFilter::new(&f).matches(TaskUid(0), &head));
    }

    fn page(uids_desc: &[u32], query: &TaskQuery) -> (Vec<u32>, u64, Option<u32>) {
        let mut b = PageBuilder::new(query);
        let ordered: Vec<u32> = if query.reverse {
            uids_desc.iter().rev().copied().collect()
        } else {
            uids_desc.to_vec()
        };
        for uid in ordered {
            let status = if uid % 2 == 0 {
                TaskStatus::Succeeded
            } else {
                TaskStatus::Enqueued
            };
            b.offer(TaskUid(uid), &head_env(status, Some("i"), 0, None))
                .unwrap();
        }
        let p = b.finish(None);
        (
            p.tasks.iter().map(|t| t.uid.0).collect(),
            p.total,
            p.next.map(|n| n.0),
        )
    }

    #[test]
    fn pagination_matches_get_tasks() {
        let all: Vec<u32> = (0..10).rev().collect();
        let q = |from: Option<u32>, limit: u32, reverse: bool| TaskQuery {
            filter: TaskFilter::default(),
            from: from.map(TaskUid),
            limit,
            reverse,
        };
        assert_eq!(page(&all, &q(None, 3, false)), (vec![9, 8, 7], 10, Some(6)));
        assert_eq!(
            page(&all, &q(Some(6), 3, false)),
            (vec![6, 5, 4], 10, Some(3))
        );
        assert_eq!(page(&all, &q(Some(2), 3, false)), (vec![2, 1, 0], 10, None));
        assert_eq!(
            page(&all, &q(None, 4, true)),
            (vec![0, 1, 2, 3], 10, Some(4))
        );
        assert_eq!(page(&all, &q(Some(8), 4, true)), (vec![8, 9], 10, None));
        assert_eq!(page(&all, &q(None, 0, false)), (vec![], 10, Some(9)));
        let mut even = q(Some(7), 2, false);
        even.filter.statuses = Some(vec![TaskStatus::Succeeded]);
        assert_eq!(page(&all, &even), (vec![6, 4], 5, Some(2)));
    }

    #[test]
    fn plans_pick_the_cheapest_scan() {
        let mut q = TaskQuery::default();
        assert_eq!(plan(&q), ScanPlan::Window);
        q.from = Some(TaskUid(3));
        assert_eq!(
            plan(&q),
            ScanPlan::Window,
            "from is pagination, not a filter"
        );
        q.filter.statuses = Some(vec![TaskStatus::Enqueued, TaskStatus::Processing]);
        assert_eq!(plan(&q), ScanPlan::Unfinished);
        q.filter.statuses = Some(vec![TaskStatus::Enqueued, TaskStatus::Failed]);
        assert_eq!(plan(&q), ScanPlan::Full);
        q.filter.statuses = None;
        q.filter.index_uids = Some(vec!["movies".into(), "books".into(), "movies".into()]);
        assert_eq!(
            plan(&q),
            ScanPlan::Indexes(vec!["books".into(), "movies".into()])
        );
        q.filter.statuses = Some(vec![TaskStatus::Processing]);
        assert_eq!(plan(&q), ScanPlan::Unfinished);
        q.filter.index_uids = None;
        q.filter.statuses = None;
        q.filter.types = Some(vec![TaskType::IndexCreation]);
        assert_eq!(plan(&q), ScanPlan::Full);
        q.filter.uids = Some(vec![TaskUid(3), TaskUid(1), TaskUid(3), TaskUid(2)]);
        assert_eq!(
            plan(&q),
            ScanPlan::Uids(vec![TaskUid(3), TaskUid(2), TaskUid(1)])
        );
        q.reverse = true;
        assert_eq!(
            plan(&q),
            ScanPlan::Uids(vec![TaskUid(1), TaskUid(2), TaskUid(3)])
        );
    }

    #[test]
    fn prune_takes_oldest_terminal_only() {
        use TaskStatus::*;
        let tasks = [
            (0, Succeeded),
            (1, Enqueued),
            (2, Failed),
            (3, Canceled),
            (4, Succeeded),
        ]
        .map(|(u, s)| (TaskUid(u), s));
        assert_eq!(prune_victims(tasks, 2), vec![TaskUid(0), TaskUid(2)]);
        assert_eq!(prune_victims(tasks, 4), vec![]);
        assert_eq!(prune_victims(tasks, 0).len(), 4);
    }

    #[test]
    fn index_keys_group_by_index_in_uid_order() {
        let a = index_key("movies", TaskUid(2));
        let b = index_key("movies", TaskUid(256));
        assert!(a < b && a.starts_with(&index_prefix("movies")));
        assert!(!index_key("movies2", TaskUid(0)).starts_with(&index_prefix("movies")));
        assert_eq!(uid_of_index_key(&b).unwrap(), TaskUid(256));
        assert!(uid_of_index_key(b"abc").is_err());
        let mut c = vec![(TaskUid(1), ()), (TaskUid(9), ()), (TaskUid(4), ())];
        sort_result_order(&mut c, false);
        assert_eq!(c.iter().map(|x| x.0 .0).collect::<Vec<_>>(), [9, 4, 1]);
        sort_result_order(&mut c, true);
        assert_eq!(c.iter().map(|x| x.0 .0).collect::<Vec<_>>(), [1, 4, 9]);
    }

    #[test]
    fn prefix_successor_bounds_the_prefix_range() {
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
    }

    #[test]
    fn meta_keys_are_bounded() {
        assert!(check_meta_key("").is_err());
        assert!(check_meta_key("index/movies").is_ok());
        assert!(check_meta_key(&"k".repeat(MAX_META_KEY_LEN)).is_ok());
        assert!(check_meta_key(&"k".repeat(MAX_META_KEY_LEN + 1)).is_err());
    }

    proptest! {
        #[test]
        fn prop_envelope_round_trips(
            index in proptest::option::of("[a-zA-Z0-9_-]{0,40}"),
            ty in 0u8..14,
            status in 0u8..5,
            enq in any::<i64>(),
            started in proptest::option::of(any::<i64>()),
            finished in proptest::option::of(any::<i64>()),
            canceled in proptest::option::of(any::<u32>()),
            nodes in proptest::collection::vec(("[a-z0-9-]{1,12}", any::<u32>()), 0..5),
            received in any::<u32>(),
            view in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            custom in proptest::option::of(".{0,20}"),
        ) {
            let state = TaskState {
                status: TaskStatus::from_code(status).unwrap(),
                started_at: started.map(t),
                finished_at: finished.map(t),
                canceled_by: canceled.map(TaskUid),
                node_tasks: nodes
                    .iter()
                    .map(|(n, u)| NodeTask { node: NodeId::new(n), task_uid: *u })
                    .collect(),
                failed_nodes: vec![],
                details: json!({"receivedDocuments": received}),
                terminal_view: view,
                custom_metadata: custom,
            };
            let ty = TaskType::from_code(ty).unwrap();
            let env = encode(index.as_deref(), ty, t(enq), &state).unwrap();
            prop_assert_eq!(status_of(&env).unwrap(), state.status);
            let rec = decode(TaskUid(1), &env).unwrap();
            prop_assert_eq!(rec.index_uid, index);
            prop_assert_eq!(rec.task_type, ty);
            prop_assert_eq!(rec.enqueued_at, t(enq));
            prop_assert_eq!(rec.state, state);
        }

        #[test]
        fn prop_pages_partition_the_matches(n in 0u32..60, limit in 1u32..7, reverse: bool) {
            // Walking `next` from the first page visits every matching uid exactly once, in
            // order, and every page reports the same total.
            let all: Vec<u32> = (0..n).rev().collect();
            let filter =
                TaskFilter { statuses: Some(vec![TaskStatus::Succeeded]), ..Default::default() };
            let mut from = None;
            let mut seen = Vec::new();
            loop {
                let q = TaskQuery { filter: filter.clone(), from, limit, reverse };
                let (uids, total, next) = page(&all, &q);
                prop_assert_eq!(total, u64::from(n.div_ceil(2)));
                prop_assert!(uids.len() <= limit as usize);
                seen.extend(uids);
                match next { Some(nx) => from = Some(TaskUid(nx)), None => break }
            }
            let mut expected: Vec<u32> = (0..n).filter(|u| u % 2 == 0).collect();
            if !reverse { expected.reverse(); }
            prop_assert_eq!(seen, expected);
        }
    }
}
