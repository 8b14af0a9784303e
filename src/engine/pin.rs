//! The manager PIN is checked on one dedicated thread that owns argon2's working memory
//! (`posd_core::pin::PinVerifier`): checks from the blocking pool left each pool thread's
//! allocator arena holding its own 19 MiB (RSS 21 → 248 MB after ~20 checks, issue 14). One
//! thread, one buffer, and its pages handed back to the kernel after each check: RSS is the same
//! before and after, however many checks run.

use posd_core::pin::{PinHashError, PinVerifier};
use std::sync::mpsc;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

type Job = (
    Zeroizing<String>,
    String,
    oneshot::Sender<Result<bool, PinHashError>>,
);

/// Hands the whole pages of `range` back to the kernel: RSS returns to idle after each check
/// and the PIN-derived state is gone (the pages read as zero when touched again).
fn release_pages(range: std::ops::Range<usize>) {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let page = page.max(1);
    let start = range.start.div_ceil(page) * page;
    let end = range.end / page * page;
    if end > start {
        // SAFETY: [start, end) lies inside the verifier's own buffer, which nothing else
        // references while this thread runs between checks; MADV_DONTNEED on private anonymous
        // memory only makes its pages read as zero afterwards.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The handle to the PIN thread, started at the first check.
#[derive(Default)]
pub(crate) struct PinThread {
    tx: Option<mpsc::Sender<Job>>,
}

impl PinThread {
    fn start() -> std::io::Result<mpsc::Sender<Job>> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("posd-pin".into())
            .spawn(move || {
                let mut v = PinVerifier::new();
                for (pin, hash, reply) in rx {
                    let r = v.verify(&pin, &hash);
                    release_pages(v.memory_range());
                    let _ = reply.send(r);
                }
            })?;
        Ok(tx)
    }

    /// True when `pin` matches `hash`; false on a wrong PIN or a hash that cannot be checked
    /// (said in the log: config validation refuses such hashes at start).
    pub(crate) async fn check(&mut self, pin: String, hash: String) -> bool {
        let pin = Zeroizing::new(pin);
        if self.tx.is_none() {
            match Self::start() {
                Ok(tx) => self.tx = Some(tx),
                Err(e) => {
                    log::error!("cannot start the PIN check thread: {e}");
                    return false;
                }
            }
        }
        let (reply, answer) = oneshot::channel();
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send((pin, hash, reply)).is_ok());
        if !sent {
            // The thread is gone (it cannot panic on input, but be sure): start again next time.
            self.tx = None;
            log::error!("the PIN check thread stopped; the check is refused");
            return false;
        }
        match answer.await {
            Ok(Ok(ok)) => ok,
            Ok(Err(e)) => {
                log::error!("manager.pin_hash: {e}");
                false
            }
            Err(_) => {
                self.tx = None;
                false
            }
        }
    }
}
