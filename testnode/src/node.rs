//! The node's state (indexes, tasks, keys), the single task worker, and persistence.
//!
//! Persistence (`--db-path`): an append-only journal (`journal.jsonl`) of accepted tasks with
//! their payloads, task outcomes and key changes, each record `fsync`ed before the HTTP answer
//! or the next state change. Restart replays the journal: finished tasks are re-applied in
//! order with their recorded timestamps (processing is deterministic), unfinished ones are
//! processed again. Why a journal rather than snapshots: each write costs one small append
//! instead of rewriting the whole state, and a torn final line after `kill -9` is simply
//! dropped (it was never acknowledged).

use crate::documents;
use crate::error::{validate_index_uid, ApiError, Result};
use crate::filter;
use crate::index::Index;
use crate::json::Obj;
use crate::keys::{self, Key};
use crate::settings;
use crate::tasks::Task;
use crate::timefmt::{self, Ts};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};

/// What a task does when processed (kept until processed, journaled with the task).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Payload {
    CreateIndex {
        primary_key: Option<String>,
    },
    UpdateIndex {
        primary_key: Option<String>,
        /// Meilisearch 1.50's rename (`PATCH /indexes/{uid}` with `uid`).
        #[serde(default)]
        new_uid: Option<String>,
    },
    DeleteIndex,
    AddDocuments {
        docs: Vec<Obj>,
        primary_key: Option<String>,
        merge: bool,
        /// Whether the caller's key may create the index (`indexes.create` on it), decided
        /// at enqueue time as Meilisearch does; without it a missing index fails the task.
        #[serde(default = "yes")]
        allow_index_creation: bool,
    },
    DeleteIds(Vec<String>),
    DeleteFilter(Value),
    ClearDocuments,
    Settings {
        update: Obj,
        #[serde(default = "yes")]
        allow_index_creation: bool,
    },
    Swap(Vec<(String, String, bool)>),
    Cancel(Vec<u32>),
    /// `POST /dumps` (`snapshot: false`) and `POST /snapshots` (`snapshot: true`).
    Export {
        snapshot: bool,
    },
    DeleteTasks(Vec<u32>),
    /// `POST /indexes/{uid}/compact`: nothing to compact in memory; the index must exist.
    /// Appended last: journals name variants, older ones stay readable.
    Compact,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Enqueued { task: Task, payload: Payload },
    Finished { task: Task },
    KeyPut(Key),
    KeyDeleted(String),
    Experimental(Obj),
}

pub struct Inner {
    /// All tasks by uid (`None` once deleted); uids are dense so this is a Vec.
    pub tasks: Vec<Option<Task>>,
    pub payloads: HashMap<u32, Payload>,
    pub queue: VecDeque<u32>,
    pub next_batch: u32,
    pub keys: Vec<Key>,
    pub stalled: bool,
    pub experimental: Obj,
    /// Chat workspaces (not journaled: see `crate::chats`).
    pub chats: crate::chats::Chats,
}

pub struct Node {
    pub inner: Mutex<Inner>,
    pub indexes: RwLock<BTreeMap<String, Index>>,
    pub wake: tokio::sync::Notify,
    pub master_key: Option<String>,
    journal: Option<Mutex<File>>,
    /// Dumps go to `<export_dir>/dumps`, snapshots to `<export_dir>/snapshots`: the db path,
    /// or `$TMPDIR/miroir-testnode-exports-<pid>` in memory mode (created on first use).
    export_dir: PathBuf,
}

/// `GET /experimental-features` defaults (all off). The Meilisearch 1.50 set of flags, in its order.
pub fn default_experimental() -> Obj {
    let mut o = Obj::new();
    for k in EXPERIMENTAL {
        o.insert(*k, json!(false));
    }
    o
}

pub const EXPERIMENTAL: &[&str] = &[
    "metrics",
    "logsRoute",
    "editDocumentsByFunction",
    "containsFilter",
    "dynamicSearchRules",
    "network",
    "getTaskDocumentsRoute",
    "taskQueueCompactionRoute",
    "compositeEmbedders",
    "chatCompletions",
    "multimodal",
    "foreignKeys",
    "disableDocumentsFetchQueue",
    "legacySearch",
    "renderRoute",
];

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// Opens (and replays) the journal under `db_path`, or starts empty in memory.
    pub fn open(db_path: Option<PathBuf>, master_key: Option<String>) -> std::io::Result<Node> {
        let mut node = Node {
            inner: Mutex::new(Inner {
                tasks: Vec::new(),
                payloads: HashMap::new(),
                queue: VecDeque::new(),
                next_batch: 0,
                keys: Vec::new(),
                stalled: false,
                experimental: default_experimental(),
                chats: Default::default(),
            }),
            indexes: RwLock::new(BTreeMap::new()),
            wake: tokio::sync::Notify::new(),
            master_key,
            journal: None,
            export_dir: std::env::temp_dir()
                .join(format!("miroir-testnode-exports-{}", std::process::id())),
        };
        let mut fresh = true;
        if let Some(dir) = db_path {
            std::fs::create_dir_all(&dir)?;
            node.export_dir = dir.clone();
            let path = dir.join("journal.jsonl");
            let mut good_len = 0u64;
            if path.exists() {
                let f = std::io::BufReader::new(File::open(&path)?);
                for line in f.split(b'\n') {
                    let line = line?;
                    match serde_json::from_slice::<Record>(&line) {
                        Ok(rec) => {
                            node.replay(rec);
                            good_len += line.len() as u64 + 1;
                            fresh = false;
                        }
                        Err(_) => break, // torn tail: never acknowledged
                    }
                }
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(false)
                .write(true)
                .truncate(false)
                .open(&path)?;
            f.set_len(good_len)?;
            let mut f = f;
            std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))?;
            node.journal = Some(Mutex::new(f));
        }
        if fresh {
            if let Some(mk) = node.master_key.clone() {
                let defaults = keys::defaults(&mk, timefmt::now());
                for k in defaults {
                    node.journal(&Record::KeyPut(k.clone()))?;
                    lock(&node.inner).keys.push(k);
                }
            }
        }
        Ok(node)
    }

    fn journal(&self, rec: &Record) -> std::io::Result<()> {
        if let Some(j) = &self.journal {
            let mut line = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
            line.push(b'\n');
            let mut f = lock(j);
            f.write_all(&line)?;
            f.sync_data()?;
        }
        Ok(())
    }

    fn replay(&mut self, rec: Record) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        match rec {
            Record::Enqueued { task, payload } => {
                let uid = task.uid as usize;
                if inner.tasks.len() <= uid {
                    inner.tasks.resize(uid + 1, None);
                }
                inner.queue.push_back(task.uid);
                inner.payloads.insert(task.uid, payload);
                inner.tasks[uid] = Some(task);
            }
            Record::Finished { task } => {
                inner.queue.retain(|u| *u != task.uid);
                if let Some(b) = task.batch_uid {
                    inner.next_batch = inner.next_batch.max(b + 1);
                }
                if let Some(mut payload) = inner.payloads.remove(&task.uid) {
                    if task.status != "canceled" {
                        let indexes = self.indexes.get_mut().unwrap_or_else(|e| e.into_inner());
                        let at = (
                            task.started_at.unwrap_or(task.enqueued_at),
                            task.finished_at.unwrap_or(task.enqueued_at),
                        );
                        if !matches!(
                            payload,
                            Payload::Cancel(_) | Payload::DeleteTasks(_) | Payload::Export { .. }
                        ) {
                            let touched = touched(task.index_uid.as_deref(), &payload);
                            if apply(indexes, task.index_uid.as_deref(), &mut payload, at).is_ok() {
                                stamp(indexes, &touched, at.1);
                            }
                        }
                    }
                    if let Payload::DeleteTasks(uids) = &payload {
                        for u in uids {
                            if let Some(slot) = inner.tasks.get_mut(*u as usize) {
                                if slot.as_ref().is_some_and(Task::finished) {
                                    *slot = None;
                                }
                            }
                        }
                    }
                }
                let uid = task.uid as usize;
                if uid < inner.tasks.len() {
                    inner.tasks[uid] = Some(task);
                }
            }
            Record::KeyPut(k) => match inner.keys.iter_mut().find(|x| x.uid == k.uid) {
                Some(slot) => *slot = k,
                None => inner.keys.push(k),
            },
            Record::KeyDeleted(uid) => inner.keys.retain(|k| k.uid != uid),
            Record::Experimental(o) => inner.experimental = o,
        }
    }

    /// Registers a task and returns its summary view; the worker is woken.
    pub fn enqueue(
        &self,
        index_uid: Option<&str>,
        kind: &str,
        details: Option<Obj>,
        payload: Payload,
    ) -> Result<Task> {
        let mut inner = lock(&self.inner);
        let uid = inner.tasks.len() as u32;
        let task = Task {
            uid,
            batch_uid: None,
            index_uid: index_uid.map(str::to_string),
            status: "enqueued".into(),
            kind: kind.into(),
            canceled_by: None,
            details,
            error: None,
            enqueued_at: timefmt::now(),
            started_at: None,
            finished_at: None,
        };
        self.journal(&Record::Enqueued {
            task: task.clone(),
            payload: payload.clone(),
        })
        .map_err(|e| ApiError::internal(e.to_string()))?;
        inner.tasks.push(Some(task.clone()));
        inner.payloads.insert(uid, payload);
        inner.queue.push_back(uid);
        drop(inner);
        self.wake.notify_one();
        Ok(task)
    }

    pub fn put_key(&self, k: Key) -> Result<()> {
        self.journal(&Record::KeyPut(k.clone()))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut inner = lock(&self.inner);
        match inner.keys.iter_mut().find(|x| x.uid == k.uid) {
            Some(slot) => *slot = k,
            None => inner.keys.push(k),
        }
        Ok(())
    }

    pub fn delete_key(&self, uid: &str) -> Result<()> {
        self.journal(&Record::KeyDeleted(uid.to_string()))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        lock(&self.inner).keys.retain(|k| k.uid != uid);
        Ok(())
    }

    /// True while the index has unfinished tasks (`isIndexing`).
    pub fn is_indexing(&self, index: &str) -> bool {
        let inner = lock(&self.inner);
        inner.queue.iter().any(|u| {
            inner.tasks[*u as usize]
                .as_ref()
                .is_some_and(|t| t.index_uid.as_deref() == Some(index))
        })
    }

    pub fn set_stalled(&self, stalled: bool) {
        lock(&self.inner).stalled = stalled;
        self.wake.notify_one();
    }

    /// Picks the next task: cancelations first, then deletions, then the oldest task.
    fn next_task(&self) -> Option<(Task, Payload)> {
        let mut inner = lock(&self.inner);
        if inner.stalled || inner.queue.is_empty() {
            return None;
        }
        let kind_of = |inner: &Inner, u: &u32| {
            inner.tasks[*u as usize]
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default()
        };
        let pos = inner
            .queue
            .iter()
            .position(|u| kind_of(&inner, u) == "taskCancelation")
            .or_else(|| {
                inner
                    .queue
                    .iter()
                    .position(|u| kind_of(&inner, u) == "taskDeletion")
            })
            .unwrap_or(0);
        let uid = inner.queue[pos];
        let batch = inner.next_batch;
        inner.next_batch += 1;
        // Taken, not cloned: the journal already holds it, and a document batch is large.
        let payload = inner.payloads.remove(&uid)?;
        let task = inner.tasks[uid as usize].as_mut()?;
        task.status = "processing".into();
        task.batch_uid = Some(batch);
        task.started_at = Some(timefmt::now());
        Some((task.clone(), payload))
    }

    /// Processes queued tasks until the queue is empty or stalled. Runs on the worker thread.
    pub fn process_available(&self) {
        while let Some((mut task, mut payload)) = self.next_task() {
            let started = task.started_at.unwrap_or_else(timefmt::now);
            let result = match &mut payload {
                Payload::Cancel(uids) => Ok(self.cancel(task.uid, uids, &mut task)),
                Payload::Export { snapshot } => self
                    .export(*snapshot, started)
                    .map_err(|e| ApiError::internal(e.to_string())),
                Payload::DeleteTasks(uids) => Ok(self.delete_tasks(uids, &mut task)),
                p => {
                    let mut indexes = self.indexes.write().unwrap_or_else(|e| e.into_inner());
                    let touched = touched(task.index_uid.as_deref(), p);
                    let r = apply(
                        &mut indexes,
                        task.index_uid.as_deref(),
                        p,
                        (started, started),
                    );
                    if r.is_ok() {
                        // `updatedAt` = the task's `finishedAt`, known only now; replay
                        // stamps the same recorded value.
                        let finished = timefmt::now().max(started + 1);
                        stamp(&mut indexes, &touched, finished);
                        task.finished_at = Some(finished);
                    }
                    r
                }
            };
            let finished = task
                .finished_at
                .unwrap_or_else(|| timefmt::now().max(started + 1));
            task.finished_at = Some(finished);
            match result {
                Ok(details) => {
                    task.status = "succeeded".into();
                    if let Some(d) = details {
                        task.details = Some(d);
                    }
                }
                Err(e) => {
                    task.status = "failed".into();
                    task.error = Some(e);
                    task.details = task.details.take().map(zero_outcome);
                }
            }
            // Journal before publishing so a crash never shows a result that replay would lose.
            if self
                .journal(&Record::Finished { task: task.clone() })
                .is_err()
            {
                eprintln!("journal write failed for task {}", task.uid);
            }
            let mut inner = lock(&self.inner);
            inner.payloads.remove(&task.uid);
            inner.queue.retain(|u| *u != task.uid);
            if let Some(slot) = inner.tasks.get_mut(task.uid as usize) {
                if slot.is_some() {
                    *slot = Some(task);
                }
            }
        }
    }

    /// Applies a validated `PATCH /experimental-features` and returns the new flags.
    pub fn set_experimental(&self, update: &Obj) -> Result<Obj> {
        let mut inner = lock(&self.inner);
        let mut next = inner.experimental.clone();
        for (k, v) in &update.0 {
            next.insert(k.clone(), v.clone());
        }
        self.journal(&Record::Experimental(next.clone()))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        inner.experimental = next.clone();
        Ok(next)
    }

    /// Writes every index (settings + documents) to one JSON file — the test node's dump and
    /// snapshot format (not Meilisearch's `.dump` archive; it cannot be imported by Meilisearch).
    fn export(&self, snapshot: bool, at: Ts) -> std::io::Result<Option<Obj>> {
        let stamp =
            time::OffsetDateTime::from_unix_timestamp_nanos(at).map_err(std::io::Error::other)?;
        let fmt = time::macros::format_description!(
            "[year][month][day]-[hour][minute][second][subsecond digits:3]"
        );
        let uid = stamp.format(&fmt).map_err(std::io::Error::other)?;
        let indexes = self.indexes.read().unwrap_or_else(|e| e.into_inner());
        let mut all = Vec::new();
        for ix in indexes.values() {
            let docs: Vec<&Obj> = ix.live().map(|(_, d)| &d.obj).collect();
            all.push(json!({"uid": ix.uid, "primaryKey": ix.primary_key, "settings": ix.settings, "documents": docs}));
        }
        drop(indexes);
        let dir = self
            .export_dir
            .join(if snapshot { "snapshots" } else { "dumps" });
        std::fs::create_dir_all(&dir)?;
        let ext = if snapshot {
            "snapshot.json"
        } else {
            "dump.json"
        };
        let tmp = dir.join(format!("{uid}.{ext}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec(&json!({"indexes": all})).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, dir.join(format!("{uid}.{ext}")))?;
        Ok(if snapshot {
            None
        } else {
            Some(Obj::new().with("dumpUid", uid))
        })
    }

    fn cancel(&self, by: u32, uids: &[u32], task: &mut Task) -> Option<Obj> {
        let now = timefmt::now();
        let mut canceled = Vec::new();
        {
            let mut inner = lock(&self.inner);
            for u in uids {
                let Some(Some(t)) = inner.tasks.get_mut(*u as usize) else {
                    continue;
                };
                if t.status == "enqueued" && t.uid != by {
                    t.status = "canceled".into();
                    t.canceled_by = Some(by);
                    t.finished_at = Some(now);
                    t.details = t.details.take().map(zero_outcome);
                    canceled.push(t.clone());
                }
            }
            for t in &canceled {
                inner.queue.retain(|u| *u != t.uid);
            }
        }
        for t in &canceled {
            let _ = self.journal(&Record::Finished { task: t.clone() });
        }
        let mut d = task.details.clone().unwrap_or_default();
        d.insert("canceledTasks", json!(canceled.len()));
        Some(d)
    }

    fn delete_tasks(&self, uids: &[u32], task: &mut Task) -> Option<Obj> {
        let mut inner = lock(&self.inner);
        let mut n = 0;
        for u in uids {
            if let Some(slot) = inner.tasks.get_mut(*u as usize) {
                if slot.as_ref().is_some_and(Task::finished) {
                    *slot = None;
                    n += 1;
                }
            }
        }
        let mut d = task.details.clone().unwrap_or_default();
        d.insert("deletedTasks", json!(n));
        Some(d)
    }
}

/// Outcome counters of a task that did not run are 0 (Meilisearch reports e.g.
/// `indexedDocuments: 0` for failed or canceled additions).
fn zero_outcome(mut d: Obj) -> Obj {
    for k in [
        "indexedDocuments",
        "deletedDocuments",
        "canceledTasks",
        "deletedTasks",
    ] {
        if d.get(k).is_some() {
            d.insert(k, json!(0));
        }
    }
    d
}

/// The indexes whose `updatedAt` a successful payload changes.
fn touched(index_uid: Option<&str>, p: &Payload) -> Vec<String> {
    match p {
        Payload::Swap(pairs) => pairs
            .iter()
            .flat_map(|(a, b, _)| [a.clone(), b.clone()])
            .collect(),
        Payload::DeleteIndex
        | Payload::Cancel(_)
        | Payload::DeleteTasks(_)
        | Payload::Export { .. } => Vec::new(),
        _ => index_uid.map(str::to_string).into_iter().collect(),
    }
}

/// Sets `updatedAt` of the indexes a successful payload changed.
fn stamp(indexes: &mut BTreeMap<String, Index>, touched: &[String], at: Ts) {
    for uid in touched {
        if let Some(ix) = indexes.get_mut(uid) {
            ix.updated_at = at;
        }
    }
}

fn index_mut<'a>(indexes: &'a mut BTreeMap<String, Index>, uid: &str) -> Result<&'a mut Index> {
    indexes
        .get_mut(uid)
        .ok_or_else(|| ApiError::index_not_found(uid))
}

/// Applies one index-level payload. Deterministic given the state and `(started, finished)`,
/// which is what makes journal replay exact. Returns the final task details (`None` = keep).
pub fn apply(
    indexes: &mut BTreeMap<String, Index>,
    index_uid: Option<&str>,
    p: &mut Payload,
    (started, finished): (Ts, Ts),
) -> Result<Option<Obj>> {
    let uid = index_uid.unwrap_or_default();
    match p {
        Payload::CreateIndex { primary_key } => {
            if indexes.contains_key(uid) {
                return Err(ApiError::index_exists(uid));
            }
            indexes.insert(
                uid.to_string(),
                Index::new(uid, primary_key.clone(), started),
            );
            Ok(None)
        }
        Payload::UpdateIndex {
            primary_key,
            new_uid,
        } => {
            index_mut(indexes, uid)?;
            let uid = match new_uid.as_deref().filter(|n| *n != uid) {
                Some(new) => {
                    if indexes.contains_key(new) {
                        return Err(ApiError::index_exists(new));
                    }
                    let mut ix = indexes.remove(uid).expect("checked");
                    ix.uid = new.to_string();
                    indexes.insert(new.to_string(), ix);
                    new
                }
                None => uid,
            };
            let ix = index_mut(indexes, uid)?;
            if let Some(pk) = primary_key {
                if !ix.is_empty() && ix.primary_key.as_deref() != Some(pk.as_str()) {
                    return Err(ApiError::bad(
                        "index_primary_key_already_exists",
                        format!(
                            "Index `{uid}`: Index already has a primary key: `{}`.",
                            ix.primary_key.clone().unwrap_or_default()
                        ),
                    ));
                }
                ix.primary_key = Some(pk.clone());
            }
            ix.updated_at = finished;
            Ok(None)
        }
        Payload::Compact => {
            let ix = indexes
                .get(uid)
                .ok_or_else(|| ApiError::index_not_found(uid))?;
            // Plausible sizes (no LMDB here): the documents' pages plus free pages before,
            // without the free pages after.
            let post = crate::size::pages(ix.doc_bytes) + 4 * 4096;
            let pre = post + crate::size::pages(ix.doc_bytes / 2);
            Ok(Some(
                Obj::new()
                    .with("preCompactionSize", crate::size::human(pre as u64))
                    .with("postCompactionSize", crate::size::human(post as u64)),
            ))
        }
        Payload::DeleteIndex => {
            let ix = indexes
                .remove(uid)
                .ok_or_else(|| ApiError::index_not_found(uid))?;
            Ok(Some(Obj::new().with("deletedDocuments", ix.len())))
        }
        Payload::AddDocuments {
            docs,
            primary_key,
            merge,
            allow_index_creation,
        } => {
            if !*allow_index_creation && !indexes.contains_key(uid) {
                return Err(ApiError::index_not_found(uid));
            }
            let ix = indexes
                .entry(uid.to_string())
                .or_insert_with(|| Index::new(uid, None, started));
            let received = docs.len();
            // Consumed: the documents move into the index instead of being copied.
            // As Meilisearch 1.50 does, the index is created before the documents are
            // validated and stays (without a primary key) when the addition fails.
            let res = add_documents(ix, std::mem::take(docs), primary_key.as_deref(), *merge);
            if res.is_ok() {
                ix.updated_at = finished;
            }
            let n = res?;
            Ok(Some(
                Obj::new()
                    .with("receivedDocuments", received)
                    .with("indexedDocuments", n),
            ))
        }
        Payload::DeleteIds(ids) => {
            let ix = index_mut(indexes, uid)?;
            let n = ids.iter().filter(|id| ix.delete(id)).count();
            ix.updated_at = finished;
            Ok(Some(
                Obj::new()
                    .with("providedIds", ids.len())
                    .with("deletedDocuments", n)
                    .with("originalFilter", Value::Null),
            ))
        }
        Payload::DeleteFilter(f) => {
            let ix = index_mut(indexes, uid)?;
            let parsed = filter::parse(f, "invalid_document_filter")?;
            if let Some(flt) = &parsed {
                flt.check_filterable(&ix.view, "invalid_document_filter", None, Some(uid))?;
            }
            let ids: Vec<String> = ix
                .ids
                .iter()
                .filter(|(_, d)| {
                    parsed.as_ref().is_none_or(|flt| {
                        ix.docs[**d as usize]
                            .as_ref()
                            .is_some_and(|doc| flt.matches(&doc.obj))
                    })
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in &ids {
                ix.delete(id);
            }
            ix.updated_at = finished;
            Ok(Some(
                Obj::new()
                    .with("providedIds", 0)
                    .with("deletedDocuments", ids.len())
                    .with("originalFilter", json!(f.to_string())),
            ))
        }
        Payload::ClearDocuments => {
            let ix = index_mut(indexes, uid)?;
            let n = ix.clear();
            ix.updated_at = finished;
            Ok(Some(Obj::new().with("deletedDocuments", n)))
        }
        Payload::Settings {
            update,
            allow_index_creation,
        } => {
            if !*allow_index_creation && !indexes.contains_key(uid) {
                return Err(ApiError::index_not_found(uid));
            }
            let ix = indexes
                .entry(uid.to_string())
                .or_insert_with(|| Index::new(uid, None, started));
            let mut s = ix.settings.clone();
            settings::apply(&mut s, update);
            settings::check_applied(&s)
                .map_err(|(code, msg)| ApiError::bad(&code, format!("Index `{uid}`: {msg}")))?;
            ix.set_settings(s);
            ix.updated_at = finished;
            Ok(None)
        }
        Payload::Swap(pairs) => {
            // Meilisearch checks every pair first: each `lhs` and each swapped `rhs` must
            // exist, a renamed-to `rhs` must not.
            let mut missing = std::collections::BTreeSet::new();
            for (a, b, rename) in pairs.iter() {
                if !indexes.contains_key(a) {
                    missing.insert(a.as_str());
                }
                if !rename && !indexes.contains_key(b) {
                    missing.insert(b.as_str());
                }
            }
            match missing.len() {
                0 => {}
                1 => return Err(ApiError::index_not_found(missing.first().expect("one"))),
                _ => {
                    let list: Vec<String> = missing.iter().map(|i| format!("`{i}`")).collect();
                    return Err(ApiError::bad(
                        "index_not_found",
                        format!("Indexes {} not found.", list.join(", ")),
                    ));
                }
            }
            if let Some((a, b, _)) = pairs
                .iter()
                .find(|(_, b, rename)| *rename && indexes.contains_key(b))
            {
                return Err(ApiError::bad(
                    "index_already_exists",
                    format!("Cannot rename `{a}` to `{b}` as the index already exists. Hint: You can remove `{b}` first and then do your remove."),
                ));
            }
            for (a, b, rename) in pairs.iter() {
                if *rename {
                    let mut ia = indexes.remove(a).expect("checked");
                    ia.uid = b.clone();
                    ia.updated_at = finished;
                    indexes.insert(b.clone(), ia);
                    continue;
                }
                let mut ia = indexes.remove(a).expect("checked");
                let mut ib = indexes.remove(b).expect("checked");
                std::mem::swap(&mut ia.uid, &mut ib.uid);
                ia.updated_at = finished;
                ib.updated_at = finished;
                indexes.insert(b.clone(), ia);
                indexes.insert(a.clone(), ib);
            }
            Ok(None)
        }
        Payload::Cancel(_) | Payload::DeleteTasks(_) | Payload::Export { .. } => Ok(None),
    }
}

fn add_documents(
    ix: &mut Index,
    docs: Vec<Obj>,
    param_pk: Option<&str>,
    merge: bool,
) -> Result<usize> {
    if docs.is_empty() && param_pk.is_none() {
        // Nothing to index, nothing to infer a primary key from: a no-op success.
        return Ok(0);
    }
    let pk = match (&ix.primary_key, param_pk) {
        (Some(existing), Some(p)) if existing != p => {
            return Err(ApiError::bad(
                "index_primary_key_already_exists",
                // No `Index …:` prefix on this path in Meilisearch 1.50 (it has one on
                // `PATCH /indexes/{uid}`).
                format!("Index already has a primary key: `{existing}`."),
            ));
        }
        (Some(existing), _) => existing.clone(),
        (None, Some(p)) => p.to_string(),
        (None, None) => documents::infer_primary_key(docs.first())?,
    };
    // Validate the whole batch first: a bad document fails the task without partial writes.
    let mut ids = Vec::with_capacity(docs.len());
    for d in &docs {
        ids.push(documents::document_id(d, &pk)?);
    }
    if ix.primary_key.is_none() {
        ix.primary_key = Some(pk);
    }
    let n = docs.len();
    for (id, d) in ids.into_iter().zip(docs) {
        ix.upsert(id, d, merge);
    }
    Ok(n)
}

/// Validates an index uid for routes that create tasks.
pub fn check_uid(uid: &str) -> Result<()> {
    validate_index_uid(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(v: Value) -> Vec<Obj> {
        serde_json::from_value(v).unwrap()
    }

    fn wait_all(node: &Node) {
        node.process_available();
    }

    #[test]
    fn tasks_process_in_order_and_fail_async() {
        let node = Node::open(None, None).unwrap();
        node.enqueue(
            Some("m"),
            "documentAdditionOrUpdate",
            None,
            Payload::AddDocuments {
                docs: docs(json!([{"id": 1, "t": "a"}])),
                primary_key: None,
                merge: false,
                allow_index_creation: true,
            },
        )
        .unwrap();
        node.enqueue(
            Some("m"),
            "documentAdditionOrUpdate",
            None,
            Payload::AddDocuments {
                docs: docs(json!([{"t": "no id"}])),
                primary_key: None,
                merge: false,
                allow_index_creation: true,
            },
        )
        .unwrap();
        node.enqueue(
            Some("m"),
            "indexCreation",
            None,
            Payload::CreateIndex { primary_key: None },
        )
        .unwrap();
        wait_all(&node);
        let inner = lock(&node.inner);
        let st: Vec<_> = inner
            .tasks
            .iter()
            .map(|t| t.as_ref().unwrap().status.clone())
            .collect();
        assert_eq!(st, ["succeeded", "failed", "failed"]);
        assert_eq!(
            inner.tasks[1]
                .as_ref()
                .unwrap()
                .error
                .as_ref()
                .unwrap()
                .code,
            "missing_document_id"
        );
        assert_eq!(
            inner.tasks[2]
                .as_ref()
                .unwrap()
                .error
                .as_ref()
                .unwrap()
                .code,
            "index_already_exists"
        );
        assert_eq!(inner.tasks[0].as_ref().unwrap().batch_uid, Some(0));
    }

    #[test]
    fn empty_batch_succeeds_without_primary_key() {
        let node = Node::open(None, None).unwrap();
        node.enqueue(
            Some("e"),
            "documentAdditionOrUpdate",
            None,
            Payload::AddDocuments {
                docs: vec![],
                primary_key: None,
                merge: false,
                allow_index_creation: true,
            },
        )
        .unwrap();
        node.process_available();
        let t = lock(&node.inner).tasks[0].clone().unwrap();
        assert_eq!(t.status, "succeeded");
        assert_eq!(node.indexes.read().unwrap()["e"].primary_key, None);
    }

    #[test]
    fn journal_replay_restores_state() {
        let dir = std::env::temp_dir().join(format!("miroir-testnode-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let node = Node::open(Some(dir.clone()), Some("mk".into())).unwrap();
            node.enqueue(
                Some("m"),
                "documentAdditionOrUpdate",
                None,
                Payload::AddDocuments {
                    docs: docs(json!([{"id": 1}, {"id": 2}])),
                    primary_key: None,
                    merge: false,
                    allow_index_creation: true,
                },
            )
            .unwrap();
            node.process_available();
            node.enqueue(
                Some("m"),
                "documentDeletion",
                None,
                Payload::DeleteIds(vec!["1".into()]),
            )
            .unwrap();
            // Not processed: must be processed after restart.
        }
        // Simulate a torn write.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("journal.jsonl"))
            .unwrap();
        f.write_all(b"{\"Enqueued\":{\"tas").unwrap();
        drop(f);
        let node = Node::open(Some(dir.clone()), Some("mk".into())).unwrap();
        // The four default keys, restored from the journal (not regenerated).
        assert_eq!(lock(&node.inner).keys.len(), 4);
        assert_eq!(node.indexes.read().unwrap()["m"].len(), 2);
        node.process_available();
        assert_eq!(node.indexes.read().unwrap()["m"].len(), 1);
        let t = lock(&node.inner).tasks[0].clone().unwrap();
        assert_eq!(t.status, "succeeded");
        node.enqueue(Some("m"), "indexDeletion", None, Payload::DeleteIndex)
            .unwrap();
        assert_eq!(lock(&node.inner).tasks.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
