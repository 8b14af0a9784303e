//! What every request handler of the sandbox host returns and builds its answer with — the
//! reply, its side effects and the response helpers — apart from the router (`requests.rs`), so
//! the handlers and the router do not import each other.

use posd_core::protocol::{Notify, Request, RespStatus, Response};

/// The host's answer to one request: a response now, later, or never.
pub(super) enum Reply {
    Now(Response),
    Later(u64, Response),
    Never,
}

/// Side effects of an answer, carried out by the loop after the transaction commits.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// Automatic order payments to make: (due at ms, txn_id).
    pub(super) pays: Vec<(u64, String)>,
    /// `notify` messages: (terminal, message).
    pub(super) notifies: Vec<(String, Notify)>,
}

pub(super) fn resp(req: &Request, status: RespStatus) -> Response {
    Response {
        req_id: req.req_id.clone(),
        txn_id: req.txn_id.clone(),
        status,
        reason: None,
        host_ref: None,
        qr: None,
    }
}

pub(super) fn declined(req: &Request, reason: &str) -> Reply {
    let mut r = resp(req, RespStatus::Declined);
    r.reason = Some(reason.to_string());
    Reply::Now(r)
}

/// A host reference: a letter and up to 12 characters of the id (any text may arrive as an id:
/// take characters, never slice bytes).
pub(super) fn host_ref_of(letter: char, id: &str) -> String {
    std::iter::once(letter)
        .chain(id.chars().filter(|c| *c != '-').take(12))
        .collect()
}
