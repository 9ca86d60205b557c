//! Fuzzes bearer-token authentication (API keys and tenant tokens): arbitrary tokens, actions
//! and index names never panic, never authenticate without a valid signature, and a token's
//! principal never reaches an index its rules and parent key do not name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miroir_core::snapshot::ApiKey;
use miroir_runtime::proxy::auth::{authenticate, Principal};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let token = parts.next().unwrap_or_default();
    let index = parts.next().filter(|i| !i.is_empty());
    let action = match data.len() % 4 {
        0 => "search",
        1 => "documents.get",
        2 => "keys.get",
        _ => "settings.update",
    };
    let keys = vec![ApiKey {
        uid: "00000000-0000-4000-8000-000000000001".into(),
        key: "parent-key-value".into(),
        name: None,
        actions: vec!["search".into()],
        indexes: vec!["movies*".into()],
        expires_at: None,
    }];
    let header = format!("Bearer {token}");
    match authenticate(Some("master"), &keys, Some(header.as_bytes()), action, index, 1_000) {
        Ok(Principal::Master) => assert_eq!(token.trim(), "master"),
        Ok(Principal::Key { .. }) => assert_eq!(token.trim(), "parent-key-value"),
        Ok(Principal::Tenant(t)) => {
            assert_eq!(action, "search");
            if let Some(i) = index {
                assert!(i.starts_with("movies") && t.authorizes(i));
            }
            assert!(!t.authorizes("secrets"));
        }
        Err(e) => assert!(e.status() == 401 || e.status() == 403),
    }
});
