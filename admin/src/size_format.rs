//! Stats sizes as Meilisearch 1.50 writes them. The `sizeFormat` parameter is `raw` (bytes,
//! the default) or `human`. Miroir asks nodes for raw sizes, sums them, and only then formats
//! them, because human strings cannot be added.

/// The nodes' query string for a client's stats query. `sizeFormat=human` becomes `raw`;
/// everything else is kept as sent, so that an invalid value is refused by the nodes with
/// Meilisearch's own error. Also returns whether the client asked for `human`.
pub fn node_query(client: &str) -> (String, bool) {
    let mut human = false;
    let pairs: Vec<&str> = client
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p == "sizeFormat=human" {
                human = true;
                "sizeFormat=raw"
            } else {
                p
            }
        })
        .collect();
    (pairs.join("&"), human)
}

/// `bytes` as `sizeFormat=human` writes it (the `byte_unit` crate's binary unit, value
/// rounded to two decimals and printed without trailing zeros): `512 B`, `4 KiB`,
/// `1.99 KiB`, `1.5 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let Some(i) = (0..UNITS.len())
        .rev()
        .find(|&i| bytes >= 1u64 << (10 * (i + 1)))
    else {
        return format!("{bytes} B");
    };
    let value = bytes as f64 / (1u64 << (10 * (i + 1))) as f64;
    format!("{} {}", (value * 100.0).round() / 100.0, UNITS[i])
}

/// The bytes a [`human`] string stands for (to within its rounding), e.g. for summing the
/// nodes' compaction sizes; `None` for anything else.
pub fn parse_human(s: &str) -> Option<u64> {
    let (num, unit) = s.split_once(' ')?;
    let shift = match unit {
        "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        "PiB" => 50,
        "EiB" => 60,
        _ => return None,
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    Some((v * (1u64 << shift) as f64).round() as u64)
}

/// Turns the byte counts of one merged index stats object into human strings:
/// `rawDocumentDbSize`, `avgDocumentSize` and every `internalDatabaseSizes` entry.
pub fn humanize_index_stats(stats: &mut serde_json::Value) {
    for k in ["rawDocumentDbSize", "avgDocumentSize"] {
        humanize(stats.get_mut(k));
    }
    if let Some(serde_json::Value::Object(sizes)) = stats.get_mut("internalDatabaseSizes") {
        for v in sizes.values_mut() {
            humanize(Some(v));
        }
    }
}

/// A byte count becomes its human string; anything else is left alone.
pub fn humanize(v: Option<&mut serde_json::Value>) {
    if let Some(v) = v {
        if let Some(n) = v.as_u64() {
            *v = serde_json::Value::String(human(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_sizes_match_meilisearch() {
        // Observed on Meilisearch 1.50.0: 4096 → "4 KiB", 2040 → "1.99 KiB", 94208 → "92 KiB".
        assert_eq!(human(4096), "4 KiB");
        assert_eq!(human(2040), "1.99 KiB");
        assert_eq!(human(94_208), "92 KiB");
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 * 1024 * 1024 + 10_000), "5.01 MiB");
        assert_eq!(human(3 << 30), "3 GiB");
        assert_eq!(human(u64::MAX), "16 EiB");
    }

    #[test]
    fn human_strings_parse_back() {
        assert_eq!(parse_human("4 KiB"), Some(4096));
        assert_eq!(parse_human("512 B"), Some(512));
        assert_eq!(parse_human("1.5 MiB"), Some(1_572_864));
        for bytes in [0u64, 1023, 4096, 2040, 94_208, 5 << 20, 3 << 30] {
            let back = parse_human(&human(bytes)).unwrap();
            // Two decimals of the unit: within 0.5 % (or exact for bytes).
            assert!(
                back.abs_diff(bytes) * 200 <= bytes.max(1),
                "{bytes} → {back}"
            );
        }
        for bad in ["", "4KiB", "4 kB", "x KiB", "-1 KiB", "NaN B"] {
            assert_eq!(parse_human(bad), None, "{bad}");
        }
    }

    #[test]
    fn node_query_asks_for_raw_sizes() {
        assert_eq!(node_query(""), (String::new(), false));
        assert_eq!(
            node_query("showInternalDatabaseSizes=true&sizeFormat=human"),
            ("showInternalDatabaseSizes=true&sizeFormat=raw".into(), true)
        );
        assert_eq!(
            node_query("sizeFormat=bogus"),
            ("sizeFormat=bogus".into(), false)
        );
    }

    #[test]
    fn index_stats_sizes_become_strings() {
        let mut s = json!({"numberOfDocuments": 2, "rawDocumentDbSize": 4096, "avgDocumentSize": 2040,
            "internalDatabaseSizes": {"main": 4096, "documents": 8192}, "fieldDistribution": {"id": 2}});
        humanize_index_stats(&mut s);
        assert_eq!(
            s,
            json!({"numberOfDocuments": 2, "rawDocumentDbSize": "4 KiB", "avgDocumentSize": "1.99 KiB",
                "internalDatabaseSizes": {"main": "4 KiB", "documents": "8 KiB"}, "fieldDistribution": {"id": 2}})
        );
    }
}
