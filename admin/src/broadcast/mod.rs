//! Broadcasts with rollback: index create/update/delete/swap and settings, each answered with
//! ONE Miroir task, plus the data plane's `prepare-write`.
//!
//! Pattern: **dispatch synchronously, settle asynchronously.** The handler takes the index's
//! lock, sends the request to every node and collects the node task uids; a node that refuses
//! synchronously (Meilisearch validates shapes before enqueuing) makes the handler undo what
//! the others accepted and answer that node's error verbatim, as a single Meilisearch would.
//! Otherwise a self-tracked Miroir task is created and answered (202) and a worker — still
//! holding the index's lock, so broadcasts on one index never interleave — waits for the node tasks, verifies, rolls
//! back on any failure and finishes the Miroir task.
//!
//! Settings (docs/contract.md#shard-field): nodes always keep `_miroir_shard` filterable, and when
//! the client's `displayedAttributes` is `*` the nodes get the explicit field list
//! (`IndexMeta.fields`) instead, so no hit shows a reserved field; clients read back `*`
//! ([`crate::reads`]). `searchableAttributes` goes to the nodes as sent, `*` included: the
//! shard field's value is punctuation that yields no word
//! ([`miroir_core::documents::shard_token`]), so no query matches through it, and nodes
//! rank attributes under `*` exactly as one Meilisearch does (decision 006).
//!
//! **Meilisearch's answers.** A body Meilisearch refuses before enqueuing (a non-string index
//! `uid`, a malformed swap list) is sent to one node only, whose refusal is relayed verbatim
//! (`refused_by_a_node`): no state can change, and the message is exactly Meilisearch's.
//! Task `details` echo what Meilisearch would (settings in its key order with sets sorted,
//! [`settings_details`]; swaps with `rename`; renames with `oldIndexUid`/`newIndexUid`), and
//! a settings sub-route's errors are located relative to its own body
//! ([`relocate_to_sub_route`]).
//!
//! **Unreachable nodes.** Most broadcasts need every node (an index that exists on only some
//! nodes is not an index) and answer `503 miroir_node_unreachable` when one cannot be reached.
//! Node-side *settings* changes are different: `prepare-write`'s searchable/displayed list
//! extension (a write bringing a new field) and client settings updates skip nodes the
//! health checker marked `failed` and nodes that do not answer at all (connect error,
//! timeout), as long as every shard of the index keeps a reachable owner in some replica
//! group — else `503 miroir_no_quorum`, and nothing changes. The skipped nodes are recorded
//! durably and get the index's current settings re-applied when they recover, before they are
//! counted healthy again ([`crate::repair`]). This does not weaken the rollback guarantee of
//! settings updates ("a node failing mid-way leaves every node with the old settings"): that
//! guarantee is about nodes that *answer* — a node that refuses the change, fails its task or
//! reports something else on read-back makes every node that took it roll back, exactly as
//! before. An unreachable node neither took the new settings nor can refuse them; waiting for
//! it would make one dead node block every settings change (and, through `prepare-write`,
//! every write bringing a new field) of the deployment, which docs/contract.md#write-consistency does not
//! ask of document writes either. If the change then fails on the reachable nodes and is
//! rolled back, the repair copies the (old) settings of a peer — still correct.
//!
//! One concern per file: `engine` (dispatch, settle, rollback steps, the Miroir task around
//! them), `index_lifecycle`, `intents` (creations, deletions, swaps and renames recorded
//! before they start, finished or undone after an admin dies in the middle), `swap`, `settings` (writes) and `settings_translation` (pure,
//! unit-tested on its own), `prepare_write` (with document edition), `dumps` (dumps and
//! snapshots), `features` (experimental features) and `chats` (chat workspaces).

mod chats;
mod dumps;
mod engine;
mod features;
mod index_lifecycle;
mod intents;
mod prepare_write;
mod settings;
mod settings_translation;
mod swap;

pub use chats::chat_workspace;
pub use dumps::node_local_task;
pub(crate) use engine::spawn_task;
pub use features::experimental_features;
pub use index_lifecycle::{compact_index, create_index, delete_index, update_index};
pub use intents::recover as recover_interrupted_lifecycle;
pub use miroir_core::documents::SHARD_FIELD;
pub use prepare_write::{edit_documents, prepare_write};
pub use settings::{roll_back_interrupted, settings_request_body, update_settings};
pub use settings_translation::{
    as_sub_route_error, node_max_values_per_facet, readback_matches, relocate_to_sub_route,
    setting_key, settings_details, translate_settings, DEFAULT_RANKING_RULES,
    NODE_MAX_VALUES_PER_FACET,
};
pub use swap::{check_swaps, parse_swaps, swap_details, swap_indexes, Swap};
