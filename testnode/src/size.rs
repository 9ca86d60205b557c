//! Sizes as Meilisearch 1.50 writes them in human form (`sizeFormat=human`, compaction
//! details): the `byte_unit` crate's binary unit, the value rounded to two decimals and
//! printed without trailing zeros.

/// `4096` → `4 KiB`, `2040` → `1.99 KiB`, `512` → `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    match (0..UNITS.len())
        .rev()
        .find(|&i| bytes >= 1u64 << (10 * (i + 1)))
    {
        None => format!("{bytes} B"),
        Some(i) => {
            let v = bytes as f64 / (1u64 << (10 * (i + 1))) as f64;
            format!("{} {}", (v * 100.0).round() / 100.0, UNITS[i])
        }
    }
}

/// A whole number of 4 KiB pages holding `bytes` (at least one), as LMDB sizes are.
pub fn pages(bytes: usize) -> usize {
    bytes.div_ceil(4096).max(1) * 4096
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human(4096), "4 KiB");
        assert_eq!(super::human(2040), "1.99 KiB");
        assert_eq!(super::human(512), "512 B");
        assert_eq!(super::human(3 << 20), "3 MiB");
    }
}
