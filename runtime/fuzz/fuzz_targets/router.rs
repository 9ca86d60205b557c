//! Fuzzes the router: any method and path maps to a route or a 404/405, never panics, and a
//! route's metrics label is one of the static templates (never client input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use miroir_runtime::http::types::Method;
use miroir_runtime::proxy::router::route;

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
        Method::Options,
    ][m as usize % 7];
    let path = String::from_utf8_lossy(rest);
    if let Ok(r) = route(method, &path) {
        let template = r.template();
        assert!(template.starts_with('/'));
        assert!(!template.contains(|c: char| c.is_control()));
        if let Some(index) = r.index() {
            assert!(!index.is_empty());
        }
        let _ = r.action();
    }
});
