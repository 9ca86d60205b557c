//! Work too slow for a reactor: decompressing and parsing a large document batch takes
//! milliseconds per MiB, and every other connection of the core would wait for it. Such work
//! runs on the reactor's blocking pool (one thread per reactor, see `reactor::block_on`)
//! while the reactor keeps serving; small bodies stay inline, where a thread hand-off would
//! cost more than the work.

use miroir_core::{ErrorCode, MeiliError};

/// Bodies at least this large are prepared off the reactor.
pub const OFFLOAD_AT_BYTES: usize = 256 * 1024;

/// Runs `work` on the blocking pool when `size` is large, inline otherwise. `Err` only when
/// the pool dropped the work (the runtime is shutting down).
pub async fn run<T, F>(size: usize, work: F) -> Result<T, MeiliError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if size < OFFLOAD_AT_BYTES {
        return Ok(work());
    }
    monoio::spawn_blocking(work).await.map_err(|_| {
        MeiliError::new(
            ErrorCode::Unavailable,
            "The server is shutting down; the request was not processed.",
        )
    })
}
