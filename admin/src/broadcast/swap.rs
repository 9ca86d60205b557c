//! `POST /swap-indexes` (with Meilisearch 1.50's `rename`): the body's parsing and
//! Meilisearch's checks (pure), and the broadcast that swaps on every node or undoes it.

use super::engine::{
    dispatch, failed_task, index_not_found, refused_by_a_node, run_step, settle,
    spawn_task_tracked, wait_task,
};
use super::intents::{op_id, task_watermarks, Intent, MetaCommit, Recorded};
use crate::http_types::{ApiError, Req, Resp};
use crate::node_health::NodeHealth;
use crate::state::Admin;
use crate::store::TaskType;
use hyper::Method;
use miroir_core::error::ErrorCode;
use serde_json::{json, Value};
use std::sync::Arc;

/// One entry of a `POST /swap-indexes` body.
#[derive(Debug, Clone, PartialEq)]
pub struct Swap {
    pub lhs: String,
    pub rhs: String,
    /// Meilisearch 1.50's `rename`: `lhs` is renamed to `rhs`, which must not exist.
    pub rename: bool,
}

/// The swaps of a well-formed body (an array of `{indexes: [a, b], rename?: bool}`); `None`
/// for anything else, which Meilisearch refuses before enqueuing (its message comes from a
/// node, see `refused_by_a_node`).
pub fn parse_swaps(body: &Value) -> Option<Vec<Swap>> {
    body.as_array()?
        .iter()
        .map(|p| {
            let o = p.as_object()?;
            if o.keys().any(|k| k != "indexes" && k != "rename") {
                return None;
            }
            let i = o.get("indexes")?.as_array()?;
            let [lhs, rhs] = i.as_slice() else {
                return None;
            };
            let rename = match o.get("rename") {
                None => false,
                Some(v) => v.as_bool()?,
            };
            let uid = |v: &Value| {
                v.as_str()
                    .and_then(|s| crate::tasks::query::parse_index_uid(s).ok())
            };
            Some(Swap {
                lhs: uid(lhs)?,
                rhs: uid(rhs)?,
                rename,
            })
        })
        .collect()
}

/// The task's `details.swaps`, as Meilisearch shows them (`rename` always present).
pub fn swap_details(swaps: &[Swap]) -> Value {
    json!({"swaps": swaps.iter().map(|s| json!({"indexes": [s.lhs, s.rhs], "rename": s.rename})).collect::<Vec<_>>()})
}

/// The body that undoes `swaps` on a node: a swap is its own inverse, a rename is undone by
/// renaming back; applied in reverse order.
pub(super) fn inverse_swaps(swaps: &[Swap]) -> Value {
    Value::Array(
        swaps
            .iter()
            .rev()
            .map(|s| {
                if s.rename {
                    json!({"indexes": [s.rhs, s.lhs], "rename": true})
                } else {
                    json!({"indexes": [s.lhs, s.rhs], "rename": false})
                }
            })
            .collect(),
    )
}

/// Whether some index appears more than once across `swaps`, which Meilisearch refuses
/// synchronously whether or not the indexes exist.
pub fn names_an_index_twice(swaps: &[Swap]) -> bool {
    let mut seen = std::collections::HashSet::new();
    !swaps
        .iter()
        .flat_map(|s| [s.lhs.as_str(), s.rhs.as_str()])
        .all(|uid| seen.insert(uid))
}

/// Meilisearch's check before swapping (index-scheduler `process_batch`, `IndexSwap`): every
/// `lhs` and every non-renamed `rhs` must exist, a renamed-to `rhs` must not. Its errors.
pub fn check_swaps(swaps: &[Swap], exists: impl Fn(&str) -> bool) -> Result<(), ApiError> {
    let mut missing = std::collections::BTreeSet::new();
    let mut taken = std::collections::BTreeSet::new();
    for s in swaps {
        if !exists(&s.lhs) {
            missing.insert(s.lhs.as_str());
        }
        match (exists(&s.rhs), s.rename) {
            (true, true) => {
                taken.insert((s.lhs.as_str(), s.rhs.as_str()));
            }
            (false, false) => {
                missing.insert(s.rhs.as_str());
            }
            _ => {}
        }
    }
    let quoted = |v: Vec<&str>| {
        v.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match missing.len() {
        0 => {}
        1 => return Err(index_not_found(missing.first().expect("one element"))),
        _ => {
            return Err(ApiError::core(
                ErrorCode::IndexNotFound,
                format!(
                    "Indexes {} not found.",
                    quoted(missing.into_iter().collect())
                ),
            ))
        }
    }
    match taken.len() {
        0 => Ok(()),
        1 => {
            let (lhs, rhs) = taken.first().expect("one element");
            Err(ApiError::core(ErrorCode::IndexAlreadyExists, format!("Cannot rename `{lhs}` to `{rhs}` as the index already exists. Hint: You can remove `{rhs}` first and then do your remove.")))
        }
        _ => Err(ApiError::core(
            ErrorCode::IndexAlreadyExists,
            format!("The following indexes are being renamed but cannot because their new name conflicts with an already existing index: {}. Renaming doesn't overwrite the other index name.", quoted(taken.into_iter().map(|(_, r)| r).collect())),
        )),
    }
}

/// `POST /swap-indexes` (with Meilisearch 1.50's `rename`).
pub async fn swap_indexes(admin: &Arc<Admin>, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    // An index named twice is refused before anything else, existing or not
    // (`invalid_swap_duplicate_index_found`): a node gives the exact error.
    let Some(swaps) = parse_swaps(&body).filter(|s| !names_an_index_twice(s)) else {
        return Err(refused_by_a_node(admin, Method::POST, "/swap-indexes", &body).await);
    };
    let guard = admin
        .lock_scopes(
            swaps
                .iter()
                .flat_map(|s| [s.lhs.clone(), s.rhs.clone()])
                .collect(),
        )
        .await;
    let details = swap_details(&swaps);
    if let Err(e) = check_swaps(&swaps, |u| admin.index(u).is_some()) {
        return failed_task(admin, None, TaskType::IndexSwap, details, e).await;
    }
    let nodes = admin.broadcast_nodes();
    let undo_body = inverse_swaps(&swaps);
    // Recorded before any node is asked, with each node's last task uid: an admin killed
    // before this swap commits has it undone by the next takeover on exactly the nodes that
    // ran it (super::intents).
    let mut intent = Intent::Swap {
        body: body.clone(),
        undo: undo_body.clone(),
        watermarks: task_watermarks(admin, &nodes).await?,
        commit: None,
    };
    let record = Recorded::record(admin, &op_id("swap"), &intent).await?;
    let d = match dispatch(admin, &nodes, Method::POST, "/swap-indexes", Some(&body)).await {
        Ok(d) => d,
        Err((accepted, e)) => {
            let undo: Vec<NodeHealth> = accepted.into_iter().map(|d| d.node).collect();
            if run_step(
                admin,
                &undo,
                Method::POST,
                "/swap-indexes",
                Some(&undo_body),
            )
            .await
            .is_ok()
            {
                record.clear(admin).await;
            }
            return Err(e);
        }
    };
    spawn_task_tracked(
        admin,
        guard,
        None,
        TaskType::IndexSwap,
        details.clone(),
        move |admin, task| async move {
            if let Err(e) = settle(&admin, &d).await {
                // Undo on every node whose task succeeded.
                admin
                    .metrics
                    .rollbacks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut undo = Vec::new();
                for x in &d {
                    if let Ok(t) = wait_task(&admin, &x.node, x.task_uid).await {
                        if t["status"] == "succeeded" {
                            undo.push(x.node.clone());
                        }
                    }
                }
                if run_step(
                    &admin,
                    &undo,
                    Method::POST,
                    "/swap-indexes",
                    Some(&undo_body),
                )
                .await
                .is_ok()
                {
                    record.clear(&admin).await;
                }
                return Err(e);
            }
            // Every node swapped: from here on the swap goes forward.
            let commit = swapped_metadata(&swaps, task.0, |u| admin.index(u));
            if let Intent::Swap { commit: c, .. } = &mut intent {
                *c = Some(commit.clone());
            }
            record.update(&admin, &intent).await?;
            commit.apply(&admin).await?;
            record.clear(&admin).await;
            Ok(details)
        },
    )
    .await
}

/// The index metadata once `swaps` are applied in order (from `index`, the metadata before):
/// the entries to write, and the uids renamed away.
fn swapped_metadata(
    swaps: &[Swap],
    task: u32,
    index: impl Fn(&str) -> Option<miroir_core::snapshot::IndexMeta>,
) -> MetaCommit {
    let mut metas: Vec<miroir_core::snapshot::IndexMeta> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    // Later swaps see the earlier ones' results.
    let current =
        |uid: &str, metas: &Vec<miroir_core::snapshot::IndexMeta>, removed: &Vec<String>| {
            if removed.iter().any(|r| r == uid) {
                return None;
            }
            metas
                .iter()
                .find(|m| m.uid == uid)
                .cloned()
                .or_else(|| index(uid))
        };
    for s in swaps {
        match (
            current(&s.lhs, &metas, &removed),
            current(&s.rhs, &metas, &removed),
            s.rename,
        ) {
            (Some(mut ma), None, true) => {
                ma.uid = s.rhs.clone();
                metas.retain(|m| m.uid != s.lhs && m.uid != s.rhs);
                metas.push(ma);
                removed.retain(|r| r != &s.rhs);
                removed.push(s.lhs.clone());
            }
            (Some(mut ma), Some(mut mb), false) => {
                std::mem::swap(&mut ma, &mut mb);
                ma.uid = s.lhs.clone();
                mb.uid = s.rhs.clone();
                metas.retain(|m| m.uid != s.lhs && m.uid != s.rhs);
                metas.push(ma);
                metas.push(mb);
            }
            _ => {}
        }
    }
    MetaCommit {
        metas,
        removed,
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swapped_metadata_applies_swaps_and_renames_in_order() {
        use miroir_core::snapshot::IndexMeta;
        let meta = |uid: &str, pk: &str| IndexMeta::new(uid, Some(pk.into()), 4, "t");
        let before = [meta("a", "pa"), meta("b", "pb"), meta("c", "pc")];
        let index = |u: &str| before.iter().find(|m| m.uid == u).cloned();
        let pks = |c: &MetaCommit| {
            let mut v: Vec<(String, String)> = c
                .metas
                .iter()
                .map(|m| (m.uid.clone(), m.primary_key.clone().unwrap()))
                .collect();
            v.sort();
            v
        };
        // a<->b, then the new `b` (a's data) renamed to `d`.
        let swaps = parse_swaps(&json!([
            {"indexes": ["a", "b"]},
            {"indexes": ["b", "d"], "rename": true}
        ]))
        .unwrap();
        let c = swapped_metadata(&swaps, 9, index);
        assert_eq!(
            pks(&c),
            [("a".into(), "pb".into()), ("d".into(), "pa".into())]
        );
        assert_eq!(c.removed, ["b"]);
        assert_eq!(c.task, 9);
        // A swap applied twice is no change at all.
        let twice =
            parse_swaps(&json!([{"indexes": ["a", "c"]}, {"indexes": ["a", "c"]}])).unwrap();
        let c = swapped_metadata(&twice, 1, index);
        assert_eq!(
            pks(&c),
            [("a".into(), "pa".into()), ("c".into(), "pc".into())]
        );
        assert!(c.removed.is_empty());
    }

    #[test]
    fn an_index_named_twice_is_found_across_swaps() {
        let swap = |l: &str, r: &str| Swap {
            lhs: l.into(),
            rhs: r.into(),
            rename: false,
        };
        assert!(names_an_index_twice(&[swap("a", "a")]));
        assert!(names_an_index_twice(&[swap("a", "b"), swap("c", "a")]));
        assert!(!names_an_index_twice(&[swap("a", "b"), swap("c", "d")]));
        assert!(!names_an_index_twice(&[]));
    }

    #[test]
    fn swaps_parse_check_and_invert_like_meilisearch() {
        let body = json!([{"indexes": ["a", "b"]}, {"indexes": ["c", "d"], "rename": true}]);
        let swaps = parse_swaps(&body).unwrap();
        assert_eq!(
            swap_details(&swaps),
            json!({"swaps": [{"indexes": ["a", "b"], "rename": false}, {"indexes": ["c", "d"], "rename": true}]})
        );
        assert_eq!(
            inverse_swaps(&swaps),
            json!([{"indexes": ["d", "c"], "rename": true}, {"indexes": ["a", "b"], "rename": false}])
        );
        // Shapes Meilisearch refuses before enqueuing.
        for bad in [
            json!({"indexes": ["a", "b"]}),
            json!([{"indexes": ["a"]}]),
            json!([{"indexes": ["a", 1]}]),
            json!([{"indexes": ["a", "b"], "rename": "yes"}]),
            json!([{"indexes": ["a", "b"], "foo": 1}]),
            json!([{"indexes": ["a", "bad uid"]}]),
        ] {
            assert_eq!(parse_swaps(&bad), None, "{bad}");
        }
        let have = |u: &str| ["a", "b", "c"].contains(&u);
        assert!(check_swaps(&swaps, have).is_ok());
        let e = check_swaps(
            &parse_swaps(&json!([{"indexes": ["x", "a"]}])).unwrap(),
            have,
        )
        .unwrap_err();
        assert_eq!(e.body()["code"], "index_not_found");
        assert_eq!(e.body()["message"], "Index `x` not found.");
        let e = check_swaps(
            &parse_swaps(&json!([{"indexes": ["y", "x"]}])).unwrap(),
            have,
        )
        .unwrap_err();
        assert_eq!(e.body()["message"], "Indexes `x`, `y` not found.");
        let e = check_swaps(
            &parse_swaps(&json!([{"indexes": ["a", "b"], "rename": true}])).unwrap(),
            have,
        )
        .unwrap_err();
        assert_eq!(e.body()["code"], "index_already_exists");
        assert_eq!(e.body()["message"], "Cannot rename `a` to `b` as the index already exists. Hint: You can remove `b` first and then do your remove.");
    }
}
