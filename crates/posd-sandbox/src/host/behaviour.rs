//! The sandbox host's test behaviours chosen by a payment code's last two digits, like card
//! networks' test numbers (docs/sandbox-host.md): shared by code payments and cards.

/// The code-selected behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Approve,
    Decline,
    PendingThenApprove,
    /// Cards: pending; the first query approves.
    PendingOnce,
    PendingForever,
    LostAnswer,
    Silent,
    LateAnswer,
    ErrorThenApproved,
}

impl Behaviour {
    pub fn of_code(code: &str) -> Behaviour {
        let tail: String = code
            .chars()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        match tail.as_str() {
            "11" => Behaviour::Decline,
            "22" => Behaviour::PendingThenApprove,
            "33" => Behaviour::PendingForever,
            "44" => Behaviour::LostAnswer,
            "55" => Behaviour::Silent,
            "66" => Behaviour::LateAnswer,
            "77" => Behaviour::ErrorThenApproved,
            _ => Behaviour::Approve,
        }
    }
    pub(super) fn as_str(&self) -> &'static str {
        match self {
            Behaviour::Approve => "approve",
            Behaviour::Decline => "decline",
            Behaviour::PendingThenApprove => "pending_then_approve",
            Behaviour::PendingOnce => "pending_once",
            Behaviour::PendingForever => "pending_forever",
            Behaviour::LostAnswer => "lost_answer",
            Behaviour::Silent => "silent",
            Behaviour::LateAnswer => "late_answer",
            Behaviour::ErrorThenApproved => "error_then_approved",
        }
    }
    pub(super) fn parse(s: &str) -> Behaviour {
        match s {
            "decline" => Behaviour::Decline,
            "pending_then_approve" => Behaviour::PendingThenApprove,
            "pending_once" => Behaviour::PendingOnce,
            "pending_forever" => Behaviour::PendingForever,
            "lost_answer" => Behaviour::LostAnswer,
            "silent" => Behaviour::Silent,
            "late_answer" => Behaviour::LateAnswer,
            "error_then_approved" => Behaviour::ErrorThenApproved,
            _ => Behaviour::Approve,
        }
    }
}
