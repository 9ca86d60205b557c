//! Waking the snapshot watcher when the admin commits to the store, instead of polling the
//! store every few milliseconds (docs/decisions/053-snapshot-watch-by-inotify.md).
//!
//! An inotify watch on the store's directory: LMDB, opened without `WRITE_MAP` as
//! `SnapshotStore` does, writes a commit's pages and then its meta page with `pwrite`, and
//! every such write is an `IN_MODIFY` on `data.mdb`. A reader sees a commit only once the
//! writer has stored the new transaction id in the lock file's shared memory — just after the
//! meta page's `pwrite`, and without an event — so a wake-up can come a moment before the
//! commit is visible: the watcher then keeps looking for a short while
//! (`SETTLE_FOR` in the parent module). Read transactions only touch the memory-mapped lock
//! file and raise no event, so the watcher's own reads do not wake it. The watcher still looks on a slow period in case the
//! file system does not report writes (some network file systems).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// An inotify watch on one directory.
pub struct StoreChanges {
    fd: OwnedFd,
}

impl StoreChanges {
    /// Watches `dir` (which must exist) for writes, creations and renames of its files.
    pub fn watch(dir: &Path) -> io::Result<Self> {
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: plain system call; a non-negative result is a new descriptor we own.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a valid descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mask = libc::IN_MODIFY | libc::IN_CLOSE_WRITE | libc::IN_CREATE | libc::IN_MOVED_TO;
        // SAFETY: `path` is NUL-terminated and outlives the call.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(StoreChanges { fd })
    }

    /// Waits until a file in the directory changed or `timeout` passed, and consumes the
    /// queued events. Returns whether something changed (`false` also after a signal).
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up, so a sub-millisecond wait does not become a busy loop.
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if n == 0 {
            return Ok(false);
        }
        self.drain()?;
        Ok(true)
    }

    /// Reads every queued event (their content does not matter: any change means "look").
    fn drain(&self) -> io::Result<()> {
        // Aligned for `inotify_event`, large enough for many events per read.
        let mut buf = [0u64; 512];
        loop {
            // SAFETY: the buffer is valid for its length in bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    std::mem::size_of_val(&buf),
                )
            };
            if n > 0 {
                continue;
            }
            if n == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(()),
                io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_core::snapshot::Snapshot;
    use miroir_core::snapshot_store::SnapshotStore;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("miroir-changes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn an_lmdb_commit_wakes_the_watch_and_a_read_does_not() {
        let dir = temp_dir("commit");
        let store = SnapshotStore::open(&dir).unwrap();
        let changes = StoreChanges::watch(&dir).unwrap();
        assert!(
            !changes.wait(Duration::ZERO).unwrap(),
            "nothing written yet"
        );

        store.publish(&Snapshot::default()).unwrap();
        // Generous: the event is queued by the commit's own `pwrite`, before `publish` returns.
        assert!(changes.wait(Duration::from_secs(30)).unwrap());
        assert!(
            !changes.wait(Duration::ZERO).unwrap(),
            "one wait consumes every queued event"
        );

        // The watcher's own reads must not wake it, or it would spin.
        assert_eq!(store.generation().unwrap(), 1);
        assert!(store.load().unwrap().is_some());
        assert!(!changes.wait(Duration::from_millis(20)).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let dir = temp_dir("missing");
        assert!(StoreChanges::watch(&dir).is_err());
    }
}
