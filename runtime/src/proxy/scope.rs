//! Index checks Meilisearch's handlers make on routes whose indexes are in the body, not the
//! path: an index-scoped key passes authentication there (the action's index scope is
//! "route handler checks", `miroir_core::access`), so each index the body names is checked
//! here before the request is forwarded to the admin.
//!
//! - `POST /indexes`: the new uid must be one the key reaches (Meilisearch's
//!   `allow_index_creation`).
//! - `POST /swap-indexes`: both indexes of every swap, in order; an entry that is not a pair
//!   stops the check so the admin answers Meilisearch's validation error for it.
//!
//! A body that does not parse is left to the admin, which answers Meilisearch's validation
//! error (Meilisearch validates the payload before its handler checks indexes).

use crate::http::types::Method;
use crate::proxy::auth::{authorize_index, Principal};
use miroir_core::MeiliError;
use serde_json::Value;

/// `Err` with Meilisearch's refusal when the body names an index `principal` may not touch.
pub fn check_body_indexes(
    method: Method,
    template: &str,
    body: &[u8],
    principal: &Principal,
) -> Result<(), MeiliError> {
    if principal.all_indexes_authorized() {
        return Ok(());
    }
    let parsed = || serde_json::from_slice::<Value>(body).ok();
    match (method, template) {
        (Method::Post, "/indexes") => {
            if let Some(uid) = parsed().as_ref().and_then(|b| b.get("uid")?.as_str()) {
                authorize_index(principal, uid)?;
            }
            Ok(())
        }
        (Method::Post, "/swap-indexes") => {
            let Some(Value::Array(swaps)) = parsed() else {
                return Ok(());
            };
            for swap in &swaps {
                let pair = swap.get("indexes").and_then(Value::as_array);
                let Some([Value::String(a), Value::String(b)]) = pair.map(Vec::as_slice) else {
                    return Ok(());
                };
                authorize_index(principal, a)?;
                authorize_index(principal, b)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_core::ErrorCode;

    fn scoped() -> Principal {
        Principal::Key {
            uid: "u".into(),
            indexes: vec!["movies*".into()],
        }
    }

    #[test]
    fn creation_is_held_to_the_key_patterns() {
        let ok = check_body_indexes(Method::Post, "/indexes", br#"{"uid":"movies2"}"#, &scoped());
        assert!(ok.is_ok());
        let e = check_body_indexes(Method::Post, "/indexes", br#"{"uid":"books"}"#, &scoped())
            .unwrap_err();
        assert_eq!((e.code, e.status()), (ErrorCode::InvalidApiKey, 403));
        // Unparseable: the admin answers the validation error.
        assert!(check_body_indexes(Method::Post, "/indexes", b"{", &scoped()).is_ok());
    }

    #[test]
    fn every_swapped_index_is_checked() {
        let body = br#"[{"indexes":["movies","movies_new"]},{"indexes":["movies","books"]}]"#;
        assert!(check_body_indexes(Method::Post, "/swap-indexes", body, &scoped()).is_err());
        let body = br#"[{"indexes":["movies","movies_new"]}]"#;
        assert!(check_body_indexes(Method::Post, "/swap-indexes", body, &scoped()).is_ok());
        // A malformed entry before the refused one: validation comes first.
        let body = br#"[{"indexes":["movies"]},{"indexes":["movies","books"]}]"#;
        assert!(check_body_indexes(Method::Post, "/swap-indexes", body, &scoped()).is_ok());
        let master = check_body_indexes(
            Method::Post,
            "/swap-indexes",
            br#"[{"indexes":["a","b"]}]"#,
            &Principal::Master,
        );
        assert!(master.is_ok());
    }
}
