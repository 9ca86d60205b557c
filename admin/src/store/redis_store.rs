//! [`RedisTaskStore`]: the shared backend for several admin processes (`task_store.url`).
//!
//! Key layout (every key starts with a prefix, `miroir:` by default):
//!
//! | key                   | type       | content                                          |
//! |-----------------------|------------|--------------------------------------------------|
//! | `{p}task:next_uid`    | string     | number of uids ever allocated (`INCR`)           |
//! | `{p}task:data`        | hash       | uid (decimal) → [`codec`] envelope               |
//! | `{p}task:uids`        | sorted set | member uid, score uid: ordered iteration         |
//! | `{p}task:unfinished`  | sorted set | the same, only enqueued/processing tasks         |
//! | `{p}task:index:{uid}` | sorted set | the same, only the tasks of index `{uid}`        |
//! | `{p}meta:data`        | hash       | metadata key → bytes                             |
//! | `{p}meta:keys`        | sorted set | metadata keys, score 0: ordered prefix listing   |
//!
//! The records that let several hosts share this store (leader lease with fencing token,
//! metadata generation, host heartbeats) are described in [`super::redis_shared`].
//!
//! Why this shape:
//! - **Allocation and insert in one Lua script** (`INCR`, `HSET`, `ZADD`): Redis runs a script
//!   atomically, so two admins never get the same uid and a crash cannot leave a hole.
//! - **One hash for all records** rather than a key per task: a page is fetched with one
//!   `HMGET`, and every key a script touches is known up front (passed as `KEYS`).
//! - **Filtering by scanning envelope heads**, not per-status/type/index sets: statuses move
//!   while tasks run, so secondary sets would need maintenance in every update and
//!   multi-set intersections ordered by uid to produce `total`; the scan reads heads in
//!   chunks of [`SCAN_CHUNK`] (one round trip each, each chunk a consistent read inside a
//!   script) and is bounded by `task_store.max_tasks`. Unfiltered listing (the common SDK
//!   case) and `uids=` lookups read only the page.
//! - **Two indexes**: the admin lists enqueued/processing tasks several times a second to
//!   refresh them; `task:unfinished` (maintained by the same scripts that write statuses)
//!   keeps that proportional to the tasks in flight, not to history. `indexUids` is the
//!   filter SDKs use most; `task:index:{uid}` is written once at creation (a task's index
//!   never changes) and removed with the task.
//! - **Terminal tasks are frozen inside the update script**: it reads the stored status byte
//!   ([`codec::STATUS_OFFSET`]) and refuses to overwrite a terminal task, so two admins
//!   polling the same task cannot move it back from `succeeded` to `processing`.

use super::codec::{self, Head, PageBuilder, ScanPlan};
use super::{
    NewTask, StoreError, StoreFuture, TaskPage, TaskQuery, TaskRecord, TaskState, TaskStatus,
    TaskStore, UpdateOutcome,
};
use miroir_core::ids::TaskUid;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use std::time::Duration;

/// Prefix used by [`super::open_task_store`].
pub const DEFAULT_PREFIX: &str = "miroir:";
/// Tasks per round trip when scanning.
pub const SCAN_CHUNK: usize = 512;
/// Server-side time limit per command. A scan chunk or a script stays far below; longer means
/// Redis is unwell and the admin should answer 503 rather than hang a client.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RECONNECT_RETRIES: usize = 2;

/// KEYS: next_uid, data, uids, unfinished[, index set]. ARGV: envelope, unfinished (0|1).
/// Returns the uid, or -1 when 2^32 uids were allocated (the counter is restored so the error
/// is stable).
const CREATE_LUA: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n > 4294967296 then
  redis.call('DECR', KEYS[1])
  return -1
end
local uid = n - 1
redis.call('HSET', KEYS[2], uid, ARGV[1])
redis.call('ZADD', KEYS[3], uid, uid)
if ARGV[2] == '1' then redis.call('ZADD', KEYS[4], uid, uid) end
if KEYS[5] then redis.call('ZADD', KEYS[5], uid, uid) end
return uid
"#;

/// KEYS: data, unfinished. ARGV: uid, envelope, unfinished (0|1). Returns 0 not found,
/// 1 updated, 2 already terminal.
const UPDATE_LUA: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
if string.byte(cur, 2) >= 2 then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
"#;

/// KEYS: a uid sorted set, data. ARGV: bound (inclusive number, `(n` exclusive, or ±inf),
/// 'asc'|'desc', count. Returns a flat list uid, head, uid, head… where head is the envelope's
/// head only (its length is the u16 at byte offset 4): scans never ship bodies or cached
/// views. A head is nil for a uid whose record is missing.
const SCAN_LUA: &str = r#"
local ids
if ARGV[2] == 'asc' then
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', 0, ARGV[3])
else
  ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'LIMIT', 0, ARGV[3])
end
if #ids == 0 then return {} end
local vals = redis.call('HMGET', KEYS[2], unpack(ids))
local out = {}
for i = 1, #ids do
  out[2 * i - 1] = ids[i]
  local v = vals[i]
  if v then
    out[2 * i] = string.sub(v, 1, string.byte(v, 5) * 256 + string.byte(v, 6))
  else
    out[2 * i] = false
  end
end
return out
"#;

/// KEYS: meta data, meta keys. ARGV: min, max (ZRANGEBYLEX bounds), count. Flat key, value…
const META_SCAN_LUA: &str = r#"
local keys = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
if #keys == 0 then return {} end
local vals = redis.call('HMGET', KEYS[1], unpack(keys))
local out = {}
for i = 1, #keys do
  out[2 * i - 1] = keys[i]
  out[2 * i] = vals[i]
end
return out
"#;

/// KEYS: meta data, meta keys. ARGV: key, has_expected (0|1), expected, has_new (0|1), new.
const CAS_LUA: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  if cur ~= ARGV[3] then return 0 end
elseif cur then
  return 0
end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 1
"#;

struct Keys {
    next_uid: String,
    data: String,
    uids: String,
    unfinished: String,
    index_prefix: String,
    meta_data: String,
    meta_keys: String,
}

struct Scripts {
    create: Script,
    update: Script,
    scan: Script,
    meta_scan: Script,
    cas: Script,
}

/// The Redis task store. Cheap to share: the connection manager multiplexes one connection
/// and reconnects after failures (commands issued while Redis is down fail, they do not wait).
pub struct RedisTaskStore {
    conn: ConnectionManager,
    keys: Keys,
    scripts: Scripts,
    /// Replicas each task write waits for (`WAIT`); 0 = none connected at start.
    replicas: std::sync::atomic::AtomicU32,
    /// The key prefix, for the several-hosts records ([`super::redis_shared`]).
    pub(super) prefix: String,
}

/// How long a task write waits for the replicas.
const REPLICA_WAIT_MS: u64 = 1_000;

/// Which way a scan walks the uid sorted set.
#[derive(Clone, Copy)]
enum Dir {
    Asc,
    Desc,
}

impl RedisTaskStore {
    /// Connects to `url` (`redis://host:port/db`); every key is prefixed with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = Client::open(url)?;
        // Commands issued while the manager reconnects wait for it: few, short retries keep
        // an outage a prompt error (the admin answers 503) instead of a ~10 s stall; the next
        // command after a failed reconnect starts a new attempt.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let k = |s: &str| format!("{prefix}{s}");
        Ok(RedisTaskStore {
            conn,
            keys: Keys {
                next_uid: k("task:next_uid"),
                data: k("task:data"),
                uids: k("task:uids"),
                unfinished: k("task:unfinished"),
                index_prefix: k("task:index:"),
                meta_data: k("meta:data"),
                meta_keys: k("meta:keys"),
            },
            scripts: Scripts {
                create: Script::new(CREATE_LUA),
                update: Script::new(UPDATE_LUA),
                scan: Script::new(SCAN_LUA),
                meta_scan: Script::new(META_SCAN_LUA),
                cas: Script::new(CAS_LUA),
            },
            replicas: std::sync::atomic::AtomicU32::new(0),
            prefix: prefix.to_string(),
        })
    }

    /// The server's persistence settings and connected replicas
    /// (see [`super::redis_durability`]).
    pub async fn durability(&self) -> (super::redis_durability::Durability, u32) {
        use super::redis_durability::{assess, connected_replicas, Durability};
        let mut conn = self.conn();
        let get = |name: &'static str| {
            let mut conn = conn.clone();
            async move {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(name)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
                    .map(|kv| kv.get(1).cloned().unwrap_or_default())
            }
        };
        let durability = match (get("appendonly").await, get("appendfsync").await) {
            (Ok(aof), Ok(fsync)) => assess(&aof, &fsync),
            (Err(e), _) | (_, Err(e)) => Durability::Unknown(format!("CONFIG GET: {e}")),
        };
        let replicas = redis::cmd("INFO")
            .arg("replication")
            .query_async::<String>(&mut conn)
            .await
            .map(|info| connected_replicas(&info))
            .unwrap_or(0);
        (durability, replicas)
    }

    /// Makes every task write wait for `n` replicas.
    pub fn wait_for_replicas(&self, n: u32) {
        self.replicas.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// After a task write: waits for the replicas, when there are any.
    async fn replicated(&self) -> Result<(), StoreError> {
        let wanted = self.replicas.load(std::sync::atomic::Ordering::Relaxed);
        if wanted == 0 {
            return Ok(());
        }
        let acked: i64 = redis::cmd("WAIT")
            .arg(wanted)
            .arg(REPLICA_WAIT_MS)
            .query_async(&mut self.conn())
            .await?;
        if acked < i64::from(wanted) {
            return Err(StoreError::NotReplicated { acked, wanted });
        }
        Ok(())
    }

    pub(super) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// One chunk of `(uid, envelope head)` after/before `bound`.
    async fn scan_chunk(
        &self,
        set: &str,
        bound: &str,
        dir: Dir,
        count: usize,
    ) -> Result<Vec<(TaskUid, Option<Vec<u8>>)>, StoreError> {
        let dir = match dir {
            Dir::Asc => "asc",
            Dir::Desc => "desc",
        };
        let flat: Vec<Option<Vec<u8>>> = self
            .scripts
            .scan
            .key(set)
            .key(&self.keys.data)
            .arg(bound)
            .arg(dir)
            .arg(count)
            .invoke_async(&mut self.conn())
            .await?;
        pairs(flat)?
            .into_iter()
            .map(|(uid, v)| Ok((parse_uid(&uid)?, v)))
            .collect()
    }

    /// Walks the tasks of uid sorted set `set` in `dir` starting at `start` (inclusive),
    /// `chunk` per round trip, calling `visit` with each task's envelope head until it returns
    /// `false` or the set is exhausted.
    async fn walk(
        &self,
        set: &str,
        dir: Dir,
        start: Option<TaskUid>,
        chunk: usize,
        mut visit: impl FnMut(TaskUid, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut bound = match (start, dir) {
            (Some(uid), _) => uid.0.to_string(),
            (None, Dir::Asc) => "-inf".to_owned(),
            (None, Dir::Desc) => "+inf".to_owned(),
        };
        loop {
            let got = self.scan_chunk(set, &bound, dir, chunk).await?;
            for (uid, head) in &got {
                if let Some(head) = head {
                    if !visit(*uid, head)? {
                        return Ok(());
                    }
                }
            }
            match got.last() {
                Some((last, _)) if got.len() == chunk => bound = format!("({}", last.0),
                _ => return Ok(()),
            }
        }
    }

    async fn list(&self, query: &TaskQuery) -> Result<TaskPage, StoreError> {
        let mut page = PageBuilder::new(query);
        let dir = if query.reverse { Dir::Asc } else { Dir::Desc };
        // Scans see heads only; the uids that land on the page are fetched whole at the end.
        let mut wanted = Vec::new();
        let mut consider = |page: &mut PageBuilder<'_>, uid, head: &[u8]| {
            if page.consider(uid, &Head::decode(head)?) {
                wanted.push(uid);
            }
            Ok::<_, StoreError>(())
        };
        let set = match codec::plan(query) {
            ScanPlan::Uids(uids) => {
                // A handful of uids: read whole envelopes directly.
                for chunk in uids.chunks(SCAN_CHUNK) {
                    for (uid, v) in chunk.iter().zip(self.fetch(chunk).await?) {
                        if let Some(v) = v {
                            page.offer(*uid, &v)?;
                        }
                    }
                }
                return Ok(page.finish(None));
            }
            ScanPlan::Window => {
                let total: u64 = redis::cmd("ZCARD")
                    .arg(&self.keys.uids)
                    .query_async(&mut self.conn())
                    .await?;
                let chunk = page.window_len().min(SCAN_CHUNK);
                self.walk(&self.keys.uids, dir, query.from, chunk, |uid, head| {
                    consider(&mut page, uid, head)?;
                    Ok(!page.is_done())
                })
                .await?;
                return self.finish(page, &wanted, Some(total)).await;
            }
            ScanPlan::Indexes(indexes) => {
                // Heads of every candidate, merged across the indexes in result order.
                let mut candidates = Vec::new();
                for index in &indexes {
                    let set = self.index_set(index);
                    self.walk(&set, dir, None, SCAN_CHUNK, |uid, head| {
                        candidates.push((uid, head.to_vec()));
                        Ok(true)
                    })
                    .await?;
                }
                codec::sort_result_order(&mut candidates, query.reverse);
                for (uid, head) in &candidates {
                    consider(&mut page, *uid, head)?;
                }
                return self.finish(page, &wanted, None).await;
            }
            ScanPlan::Unfinished => &self.keys.unfinished,
            ScanPlan::Full => &self.keys.uids,
        };
        // Filtered: every candidate is needed for an exact total.
        self.walk(set, dir, None, SCAN_CHUNK, |uid, head| {
            consider(&mut page, uid, head).map(|()| true)
        })
        .await?;
        self.finish(page, &wanted, None).await
    }

    /// Fetches the whole records of the page's uids and completes it.
    async fn finish(
        &self,
        mut page: PageBuilder<'_>,
        wanted: &[TaskUid],
        total: Option<u64>,
    ) -> Result<TaskPage, StoreError> {
        for chunk in wanted.chunks(SCAN_CHUNK) {
            for (uid, v) in chunk.iter().zip(self.fetch(chunk).await?) {
                // Deleted since the scan: the page is one shorter, as if it had been deleted
                // just before the query.
                if let Some(v) = v {
                    page.push(codec::decode(*uid, &v)?);
                }
            }
        }
        Ok(page.finish(total))
    }

    /// Whole envelopes of these uids (`None` where missing), one `HMGET`.
    async fn fetch(&self, uids: &[TaskUid]) -> Result<Vec<Bulk>, StoreError> {
        let fields: Vec<u32> = uids.iter().map(|u| u.0).collect();
        Ok(redis::cmd("HMGET")
            .arg(&self.keys.data)
            .arg(&fields)
            .query_async(&mut self.conn())
            .await?)
    }

    fn index_set(&self, index_uid: &str) -> String {
        format!("{}{index_uid}", self.keys.index_prefix)
    }

    async fn delete(&self, uids: &[TaskUid]) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for chunk in uids.chunks(SCAN_CHUNK) {
            // The index set of each task is named by its (immutable) index uid: read it first.
            let mut pipe = redis::pipe();
            pipe.atomic();
            let mut any = false;
            for (uid, v) in chunk.iter().zip(self.fetch(chunk).await?) {
                let Some(v) = v else { continue };
                any = true;
                let set = Head::decode(&v)?.index_uid.map(|i| self.index_set(i));
                pipe.cmd("HDEL").arg(&self.keys.data).arg(uid.0);
                pipe.cmd("ZREM").arg(&self.keys.uids).arg(uid.0).ignore();
                pipe.cmd("ZREM")
                    .arg(&self.keys.unfinished)
                    .arg(uid.0)
                    .ignore();
                if let Some(set) = set {
                    pipe.cmd("ZREM").arg(set).arg(uid.0).ignore();
                }
            }
            if any {
                // One HDEL reply per task: 1 if this call removed it (0 if a concurrent
                // delete won the race).
                let removed: Vec<u64> = pipe.query_async(&mut self.conn()).await?;
                deleted += removed.iter().sum::<u64>();
            }
        }
        Ok(deleted)
    }

    async fn prune(&self, max_terminal: u64) -> Result<u64, StoreError> {
        // Not one atomic step: a task only ever becomes terminal, never leaves it, so deleting
        // tasks seen terminal is safe even if other admins write meanwhile.
        let mut statuses = Vec::new();
        self.walk(&self.keys.uids, Dir::Asc, None, SCAN_CHUNK, |uid, v| {
            statuses.push((uid, codec::status_of(v)?));
            Ok(true)
        })
        .await?;
        let victims = codec::prune_victims(statuses, max_terminal);
        self.delete(&victims).await
    }

    async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut min = [b"[", prefix.as_bytes()].concat();
        let max = match codec::prefix_successor(prefix.as_bytes()) {
            Some(s) => [b"(", s.as_slice()].concat(),
            None => b"+".to_vec(),
        };
        let mut out = Vec::new();
        loop {
            let flat: Vec<Option<Vec<u8>>> = self
                .scripts
                .meta_scan
                .key(&self.keys.meta_data)
                .key(&self.keys.meta_keys)
                .arg(&min)
                .arg(&max)
                .arg(SCAN_CHUNK)
                .invoke_async(&mut self.conn())
                .await?;
            let chunk = pairs(flat)?;
            let full = chunk.len() == SCAN_CHUNK;
            let mut last = None;
            for (k, v) in chunk {
                let key = String::from_utf8(k).map_err(|_| StoreError::Corrupt {
                    what: "metadata key".into(),
                    reason: "not UTF-8".into(),
                })?;
                last = Some(key.clone());
                if let Some(v) = v {
                    out.push((key, v));
                }
            }
            match last {
                Some(k) if full => min = [b"(", k.as_bytes()].concat(),
                _ => return Ok(out),
            }
        }
    }
}

/// A script reply element: a bulk string or nil.
type Bulk = Option<Vec<u8>>;

/// Splits a flat `[k, v, k, v…]` script reply; keys are never nil.
fn pairs(flat: Vec<Bulk>) -> Result<Vec<(Vec<u8>, Bulk)>, StoreError> {
    if !flat.len().is_multiple_of(2) {
        return Err(StoreError::Corrupt {
            what: "scan reply".into(),
            reason: "odd length".into(),
        });
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let k = k.ok_or_else(|| StoreError::Corrupt {
            what: "scan reply".into(),
            reason: "nil key".into(),
        })?;
        out.push((k, v));
    }
    Ok(out)
}

fn parse_uid(b: &[u8]) -> Result<TaskUid, StoreError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(TaskUid)
        .ok_or_else(|| StoreError::Corrupt {
            what: "task uid".into(),
            reason: "not a u32".into(),
        })
}

fn unfinished_flag(status: TaskStatus) -> &'static str {
    if status.is_terminal() {
        "0"
    } else {
        "1"
    }
}

impl TaskStore for RedisTaskStore {
    fn backend_name(&self) -> &'static str {
        "redis"
    }

    fn create_task(&self, task: NewTask) -> StoreFuture<'_, TaskRecord> {
        Box::pin(async move {
            let envelope = codec::encode_new(&task)?;
            let mut invocation = self.scripts.create.prepare_invoke();
            invocation
                .key(&self.keys.next_uid)
                .key(&self.keys.data)
                .key(&self.keys.uids)
                .key(&self.keys.unfinished)
                .arg(envelope)
                .arg(unfinished_flag(task.state.status));
            if let Some(index) = &task.index_uid {
                invocation.key(self.index_set(index));
            }
            let uid: i64 = invocation.invoke_async(&mut self.conn()).await?;
            let uid = u32::try_from(uid).map_err(|_| StoreError::UidSpaceExhausted(1 << 32))?;
            self.replicated().await?;
            Ok(TaskRecord {
                uid: TaskUid(uid),
                index_uid: task.index_uid,
                task_type: task.task_type,
                enqueued_at: task.enqueued_at,
                state: task.state,
            })
        })
    }

    fn get_task(&self, uid: TaskUid) -> StoreFuture<'_, Option<TaskRecord>> {
        Box::pin(async move {
            let v: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(&self.keys.data)
                .arg(uid.0)
                .query_async(&mut self.conn())
                .await?;
            v.map(|v| codec::decode(uid, &v)).transpose()
        })
    }

    fn update_task(&self, uid: TaskUid, state: TaskState) -> StoreFuture<'_, UpdateOutcome> {
        Box::pin(async move {
            let stored: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(&self.keys.data)
                .arg(uid.0)
                .query_async(&mut self.conn())
                .await?;
            let Some(stored) = stored else {
                return Ok(UpdateOutcome::NotFound);
            };
            // The immutable fields cannot change between this read and the script, so the new
            // envelope built from them is right; the script re-checks existence and status.
            let envelope = codec::encode_update(&stored, &state)?;
            let r: i64 = self
                .scripts
                .update
                .key(&self.keys.data)
                .key(&self.keys.unfinished)
                .arg(uid.0)
                .arg(envelope)
                .arg(unfinished_flag(state.status))
                .invoke_async(&mut self.conn())
                .await?;
            if r == 1 {
                self.replicated().await?;
            }
            Ok(match r {
                1 => UpdateOutcome::Updated,
                2 => UpdateOutcome::AlreadyTerminal,
                _ => UpdateOutcome::NotFound,
            })
        })
    }

    fn list_tasks<'a>(&'a self, query: &'a TaskQuery) -> StoreFuture<'a, TaskPage> {
        Box::pin(self.list(query))
    }

    fn delete_tasks<'a>(&'a self, uids: &'a [TaskUid]) -> StoreFuture<'a, u64> {
        Box::pin(self.delete(uids))
    }

    fn prune(&self, max_terminal: u64) -> StoreFuture<'_, u64> {
        Box::pin(RedisTaskStore::prune(self, max_terminal))
    }

    fn count_tasks(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            Ok(redis::cmd("ZCARD")
                .arg(&self.keys.uids)
                .query_async(&mut self.conn())
                .await?)
        })
    }

    fn count_unfinished_tasks(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            Ok(redis::cmd("ZCARD")
                .arg(&self.keys.unfinished)
                .query_async(&mut self.conn())
                .await?)
        })
    }

    fn next_task_uid(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let n: Option<u64> = redis::cmd("GET")
                .arg(&self.keys.next_uid)
                .query_async(&mut self.conn())
                .await?;
            Ok(n.unwrap_or(0))
        })
    }

    fn get_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            codec::check_meta_key(key)?;
            Ok(redis::cmd("HGET")
                .arg(&self.keys.meta_data)
                .arg(key)
                .query_async(&mut self.conn())
                .await?)
        })
    }

    fn put_meta<'a>(&'a self, key: &'a str, value: &'a [u8]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            codec::check_meta_key(key)?;
            let _: () = redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&self.keys.meta_data)
                .arg(key)
                .arg(value)
                .ignore()
                .cmd("ZADD")
                .arg(&self.keys.meta_keys)
                .arg(0)
                .arg(key)
                .ignore()
                .query_async(&mut self.conn())
                .await?;
            Ok(())
        })
    }

    fn delete_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            codec::check_meta_key(key)?;
            let (n, _): (u64, u64) = redis::pipe()
                .atomic()
                .cmd("HDEL")
                .arg(&self.keys.meta_data)
                .arg(key)
                .cmd("ZREM")
                .arg(&self.keys.meta_keys)
                .arg(key)
                .query_async(&mut self.conn())
                .await?;
            Ok(n > 0)
        })
    }

    fn list_meta<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Vec<u8>)>> {
        Box::pin(RedisTaskStore::list_meta(self, prefix))
    }

    fn cas_meta<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<&'a [u8]>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            codec::check_meta_key(key)?;
            let flag = |o: Option<&[u8]>| if o.is_some() { "1" } else { "0" };
            let r: i64 = self
                .scripts
                .cas
                .key(&self.keys.meta_data)
                .key(&self.keys.meta_keys)
                .arg(key)
                .arg(flag(expected))
                .arg(expected.unwrap_or_default())
                .arg(flag(new))
                .arg(new.unwrap_or_default())
                .invoke_async(&mut self.conn())
                .await?;
            Ok(r == 1)
        })
    }
}
