//! Cards: the host's X25519 key that terminals seal card data to, opening that data (the PAN
//! stays in memory, only the masked PAN is stored) and the card-number test table.

use super::behaviour::Behaviour;
use super::reply::{declined, host_ref_of, resp, Reply};
use super::{HostConfig, HostError};
use posd_core::protocol::{Request, RespStatus};
use rusqlite::{params, Connection};

/// Reads the host's card secret (X25519, base64) for `HostConfig::card_secret`.
pub fn parse_card_secret(text: &str) -> Result<[u8; 32], HostError> {
    posd_core::card::seal::parse_key_b64(text).map_err(|e| HostError::CardKey(e.to_string()))
}

/// A new card key pair for the host: (secret, public), both base64.
pub fn card_keygen() -> Result<(String, String), HostError> {
    let (secret, public) =
        posd_core::card::seal::keygen_random().map_err(|e| HostError::CardKey(e.to_string()))?;
    Ok((
        posd_core::card::seal::key_to_b64(&secret),
        posd_core::card::seal::key_to_b64(&public),
    ))
}

/// What a card number makes the sandbox do (docs/sandbox-host.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBehaviour {
    Approve,
    Decline(&'static str),
    /// Pending; the first query approves.
    PendingThenApprove,
    /// Charged, but authorize and query are never answered (only reversals).
    Silent,
}

impl CardBehaviour {
    pub fn of_pan(pan: &str) -> CardBehaviour {
        match pan {
            "4000000000000002" => CardBehaviour::Decline("do not honor"),
            "4000000000009995" => CardBehaviour::Decline("insufficient funds"),
            "4000000000000259" => CardBehaviour::PendingThenApprove,
            "4000000000000119" => CardBehaviour::Silent,
            p if !posd_core::card::luhn_ok(p) => CardBehaviour::Decline("invalid card number"),
            _ => CardBehaviour::Approve,
        }
    }
}

const CARD_UNREADABLE: &str = "card data unreadable";

/// Opens `card.sealed` with the host's secret and the AAD; returns the masked PAN and the
/// behaviour. The PAN itself never leaves this function.
pub(super) fn read_card(
    cfg: &HostConfig,
    card: Option<&serde_json::Value>,
    aad: &[u8],
) -> Result<(String, CardBehaviour), &'static str> {
    let sealed = card
        .and_then(|c| c.get("sealed"))
        .and_then(|s| s.as_str())
        .ok_or(CARD_UNREADABLE)?;
    let secret = cfg.card_secret.as_ref().ok_or(CARD_UNREADABLE)?;
    // CardData wipes itself when dropped at the end of this function.
    let data = posd_core::card::seal::open(sealed, secret, aad).map_err(|e| {
        log::warn!("host: sealed card data does not open: {e}");
        CARD_UNREADABLE
    })?;
    Ok((data.masked_pan(), CardBehaviour::of_pan(&data.pan)))
}

/// The masked PAN the terminal sent, when it really is masked (at most 10 digits shown).
pub(super) fn card_masked(card: Option<&serde_json::Value>) -> Option<String> {
    let m = card?.get("masked_pan")?.as_str()?;
    (m.chars().filter(char::is_ascii_digit).count() <= 10 && m.len() <= 32).then(|| m.to_string())
}

/// `authorize` with `method: "card"`: by the card number; unreadable card data declines and
/// charges nothing. The ledger keeps only the masked PAN.
pub(super) fn card_authorize(
    db: &Connection,
    terminal: &str,
    req: &Request,
    now: u64,
    cfg: &HostConfig,
) -> Result<Reply, HostError> {
    let amount = req.amount.unwrap_or(0);
    let currency = req.currency.clone().unwrap_or_default();
    let aad = format!("{}|{amount}|{currency}", req.txn_id);
    let host_ref = host_ref_of('H', &req.txn_id);
    let (masked, b, state, reply) = match read_card(cfg, req.card.as_ref(), aad.as_bytes()) {
        Err(why) => (
            card_masked(req.card.as_ref()),
            "card_unreadable",
            "declined",
            declined(req, why),
        ),
        Ok((m, CardBehaviour::Approve)) => (Some(m), "approve", "charged", {
            let mut r = resp(req, RespStatus::Approved);
            r.host_ref = Some(host_ref.clone());
            Reply::Now(r)
        }),
        Ok((m, CardBehaviour::Decline(why))) => {
            (Some(m), "decline", "declined", declined(req, why))
        }
        Ok((m, CardBehaviour::PendingThenApprove)) => (
            Some(m),
            Behaviour::PendingOnce.as_str(),
            "pending",
            Reply::Now(resp(req, RespStatus::Pending)),
        ),
        Ok((m, CardBehaviour::Silent)) => (Some(m), "silent", "charged", Reply::Never),
    };
    let reason = match &reply {
        Reply::Now(r) if r.status == RespStatus::Declined => r.reason.clone(),
        _ => None,
    };
    db.execute(
        "INSERT INTO ledger (txn_id, terminal, amount, currency, behaviour, state, host_ref,
            reason, masked_pan, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            req.txn_id, terminal, amount, currency, b, state, host_ref, reason, masked, now as i64
        ],
    )?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::reply::Effects;
    use crate::host::requests::answer;
    use crate::host::test_support::{ask, card_cfg, cfg, ledger_state, mem_db, req, sealed};
    use posd_core::protocol::{Op, Response};

    fn card_auth(
        db: &mut Connection,
        c: &HostConfig,
        txn: &str,
        pan: &str,
        aad_amount: i64,
    ) -> Option<Response> {
        let mut r = req(&format!("a-{txn}"), Op::Authorize, txn);
        r.method = Some("card".into());
        r.channel = Some("visa".into());
        r.amount = Some(1000);
        r.currency = Some("EUR".into());
        r.card = Some(sealed(pan, &format!("{txn}|{aad_amount}|EUR")));
        let mut fx = Effects::default();
        let t = db.transaction().unwrap();
        let reply = answer(&t, "T1", &r, 1_000, c, &mut fx).unwrap();
        t.commit().unwrap();
        match reply {
            Reply::Now(r) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn cards_by_number_and_never_the_pan() {
        let mut db = mem_db();
        let c = card_cfg();
        let r = card_auth(&mut db, &c, "k1", "4111111111111111", 1000).unwrap();
        assert_eq!(r.status, RespStatus::Approved);
        let r = card_auth(&mut db, &c, "k2", "4000000000000002", 1000).unwrap();
        assert_eq!(r.reason.as_deref(), Some("do not honor"));
        let r = card_auth(&mut db, &c, "k3", "4000000000009995", 1000).unwrap();
        assert_eq!(r.reason.as_deref(), Some("insufficient funds"));
        let r = card_auth(&mut db, &c, "k4", "4000000000000259", 1000).unwrap();
        assert_eq!(r.status, RespStatus::Pending);
        let (q, _) = ask(&mut db, "T1", &req("q4", Op::Query, "k4"));
        assert_eq!(q.unwrap().status, RespStatus::Approved);
        assert!(card_auth(&mut db, &c, "k5", "4000000000000119", 1000).is_none());
        assert_eq!(ledger_state(&db, "k5").as_deref(), Some("charged"));
        let (q, _) = ask(&mut db, "T1", &req("q5", Op::Query, "k5"));
        assert!(q.is_none());
        // The amount in the AAD differs: unreadable, nothing charged.
        let r = card_auth(&mut db, &c, "k6", "4111111111111111", 999).unwrap();
        assert_eq!(r.reason.as_deref(), Some("card data unreadable"));
        assert_eq!(ledger_state(&db, "k6").as_deref(), Some("declined"));
        // No key: unreadable.
        let r = card_auth(&mut db, &cfg(), "k7", "4111111111111111", 1000).unwrap();
        assert_eq!(r.reason.as_deref(), Some("card data unreadable"));
        // The ledger keeps the masked PAN only.
        let pans: Vec<Option<String>> = db
            .prepare("SELECT masked_pan FROM ledger ORDER BY txn_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(pans[0].as_deref(), Some("411111******1111"));
        let dump: String = db
            .query_row("SELECT group_concat(COALESCE(masked_pan, '') || COALESCE(reason, ''), ',') FROM ledger", [], |r| r.get(0))
            .unwrap();
        assert!(
            !dump.contains("4111111111111111") && !dump.contains("4000000000000002"),
            "{dump}"
        );
    }
}
