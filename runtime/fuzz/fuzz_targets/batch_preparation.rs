//! Fuzzes document-batch preparation (JSON array, NDJSON, CSV; primary-key resolution,
//! reserved fields, shard grouping) and delete batches: nothing panics, and an accepted batch
//! accounts for every document exactly once across its shards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miroir_core::documents::{prepare_batch, prepare_delete_batch, BatchOptions, PayloadFormat};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = match selector % 4 {
        0 => PayloadFormat::from_content_type("application/json", b','),
        1 => PayloadFormat::from_content_type("application/x-ndjson", b','),
        2 => PayloadFormat::from_content_type("text/csv", b','),
        _ => PayloadFormat::from_content_type("text/csv", b';'),
    };
    let Some(format) = format else {
        return;
    };
    let shards = 1 + u32::from(selector >> 4);
    let mut opts = BatchOptions::new(shards);
    if selector & 8 != 0 {
        opts.index_primary_key = Some("id");
    }
    if let Ok(batch) = prepare_batch(body, format, &opts) {
        let shard_ids: Vec<_> = batch.shard_ids().collect();
        assert_eq!(batch.documents_in_all(&shard_ids), batch.document_count());
        assert!(shard_ids.iter().all(|s| s.0 < shards));
        let _ = batch.render(&shard_ids);
    }
    if let Ok(del) = prepare_delete_batch(body, shards) {
        let shard_ids: Vec<_> = del.shard_ids().collect();
        let total: usize = shard_ids.iter().map(|s| del.ids_in(*s)).sum();
        assert_eq!(total, del.id_count());
    }
});
