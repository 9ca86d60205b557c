//! Node error messages as one Meilisearch would have written them.
//!
//! Miroir keeps `_miroir_shard` filterable and hidden on every node, so a node's error
//! message about attributes names it ("Available filterable attribute patterns are:
//! `_miroir_shard`, `genre`.") and, because a filterable attribute is hidden, appends
//! `<..hidden-attributes>` to its lists. A single Meilisearch holding the same index would
//! name neither. [`scrub_reserved`] removes both from every "Available … are: `…`." list and,
//! when a list ends up empty, writes Meilisearch's own sentence for that case ("This index
//! does not have configured filterable attributes.").
//!
//! Limit: `<..hidden-attributes>` is also what a node writes when the *client's* own
//! `displayedAttributes` hides a filterable attribute; that marker is removed too.

use crate::documents::RESERVED_PREFIX;
const HIDDEN: &str = "<..hidden-attributes>";
const LEAD: &str = "Available ";
const ARE: &str = " are: `";

/// The message without Miroir's reserved attributes, or `None` when it names none.
pub fn scrub_reserved(message: &str) -> Option<String> {
    if !message.contains(RESERVED_PREFIX) && !message.contains(HIDDEN) {
        return None;
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(LEAD) {
        let after_lead = &rest[at + LEAD.len()..];
        let Some(are) = after_lead.find(ARE) else {
            break;
        };
        let kind = &after_lead[..are];
        let list_start = &after_lead[are + ARE.len()..];
        // The list ends at the backtick followed by the sentence's full stop.
        let Some(end) = list_start.find("`.") else {
            break;
        };
        let list = &list_start[..end];
        out.push_str(&rest[..at]);
        out.push_str(&render(kind, list));
        rest = &list_start[end + 2..];
    }
    out.push_str(rest);
    (out != message).then_some(out)
}

/// One "Available {kind} are: `{list}`." sentence, without reserved items.
fn render(kind: &str, list: &str) -> String {
    // Two list styles: "`a`, `b`" (filter errors) and "`a, b`" (facets, distinct).
    let per_item = list.contains("`, `");
    let items: Vec<&str> = list
        .split(if per_item { "`, `" } else { ", " })
        .filter(|i| !i.starts_with(RESERVED_PREFIX) && *i != HIDDEN)
        .collect();
    if items.is_empty() {
        let noun = kind.split(' ').next().unwrap_or(kind);
        return format!("This index does not have configured {noun} attributes.");
    }
    let joined = items.join(if per_item { "`, `" } else { ", " });
    format!("{LEAD}{kind}{ARE}{joined}`.")
}

#[cfg(test)]
mod tests {
    use super::scrub_reserved;

    #[test]
    fn reserved_items_leave_both_list_styles() {
        assert_eq!(
            scrub_reserved("Index `m`: Attribute `title` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `genre`, `year`.\n2:7 \"title\" = \"x\"").as_deref(),
            Some("Index `m`: Attribute `title` is not filterable. Available filterable attribute patterns are: `genre`, `year`.\n2:7 \"title\" = \"x\"")
        );
        assert_eq!(
            scrub_reserved("Invalid facet distribution: Pattern `t` is not filterable. Available filterable attributes patterns are: `_miroir_shard, genre, price`.").as_deref(),
            Some("Invalid facet distribution: Pattern `t` is not filterable. Available filterable attributes patterns are: `genre, price`.")
        );
        assert_eq!(
            scrub_reserved("Attribute `t` is not facet-searchable. Available facet-searchable attributes patterns are: `genre, price, <..hidden-attributes>`. To make it facet-searchable add it to the `filterableAttributes` index settings.").as_deref(),
            Some("Attribute `t` is not facet-searchable. Available facet-searchable attributes patterns are: `genre, price`. To make it facet-searchable add it to the `filterableAttributes` index settings.")
        );
    }

    #[test]
    fn an_emptied_list_becomes_meilisearchs_none_configured_sentence() {
        assert_eq!(
            scrub_reserved("Attribute `genre` is not filterable. Available filterable attribute patterns are: `_miroir_shard`.\n1:6 genre = Drama").as_deref(),
            Some("Attribute `genre` is not filterable. This index does not have configured filterable attributes.\n1:6 genre = Drama")
        );
        assert_eq!(
            scrub_reserved("Index `m`: Attribute `t` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `<..hidden-attributes>`.").as_deref(),
            Some("Index `m`: Attribute `t` is not filterable and thus, cannot be used as distinct attribute. This index does not have configured filterable attributes.")
        );
    }

    #[test]
    fn other_messages_are_left_alone() {
        for m in [
            "Index `m` not found.",
            "Available sortable attributes are: `price, year`.",
            "Available filterable attribute patterns are: `genre`",
            "The field `_miroir_shard` is reserved",
        ] {
            assert_eq!(scrub_reserved(m), None, "{m}");
        }
    }
}
