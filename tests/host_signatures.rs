//! Signed host messages (issue 17, DESIGN §4 "Signed host messages (v1.1)") with a real
//! mosquitto, the posd binary and a hostile MQTT peer on the terminal's topics: a forged `resp`
//! (plain, wrong key, signed for another terminal, signed for another topic) approves nothing
//! and the host's signed one does; a forged settlement `notify` settles nothing; a forged `ack`
//! drops nothing, nor does a signed ack beyond what the terminal has published; each refusal is
//! counted in `status` and logged once per kind; the lab-only opt-out works and says so.

mod common;
use common::*;
use posd_core::control as ctl;
use posd_core::protocol::signed::{HostKind, HostSigner};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

/// A peer on the broker that can read `req`/`events` and write anything: the attacker, and
/// (with the host's key) the host.
struct Peer {
    client: AsyncClient,
    seen: mpsc::Receiver<(String, Vec<u8>)>,
}

impl Peer {
    async fn connect(port: u16, subscribe: &[String]) -> Peer {
        let opts = MqttOptions::new(format!("peer-{}", fastrand::u64(..)), "127.0.0.1", port);
        let (client, mut el) = AsyncClient::new(opts, 64);
        let (tx, seen) = mpsc::channel(256);
        let (ready_tx, mut ready) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.try_send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec())).await;
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        for s in subscribe {
            client.subscribe(s.clone(), QoS::AtLeastOnce).await.unwrap();
            tokio::time::timeout(WAIT, ready.recv())
                .await
                .expect("suback");
        }
        Peer { client, seen }
    }

    async fn publish(&self, topic: String, body: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }

    /// The next message on `topic` whose JSON satisfies `want`.
    async fn next(&mut self, topic: &str, want: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let (t, body) = self.seen.recv().await.expect("peer connection");
                if t == topic {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        if want(&v) {
                            return v;
                        }
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("nothing on {topic}"))
    }
}

async fn status_of(d: &Daemon) -> Value {
    let mut c = d.client().await;
    status(&mut c).await
}

async fn txn_state(d: &Daemon, id: &str) -> String {
    let mut c = d.client().await;
    let t = c
        .call_json(ctl::TxnShow { id: id.into() })
        .await
        .expect("txn_show");
    t["txn"]["state"].as_str().unwrap_or_default().to_string()
}

/// Lets the daemon handle what was just published (there is no answer to wait for when it
/// rightly ignores a message), then checks it is still connected.
async fn settle(d: &Daemon) {
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status_of(d).await["online"], true);
}

/// An online sale on its own task (it waits for an answer no host may give).
fn spawn_sale(
    d: &Daemon,
    amount: &str,
) -> tokio::task::JoinHandle<Result<Value, posd::control::ControlError>> {
    let socket = d.socket.clone();
    let amount = amount.to_string();
    tokio::spawn(async move {
        let mut c = posd::control::ControlClient::connect(&socket)
            .await
            .unwrap();
        c.call_json(ctl::Sale {
            amount,
            currency: None,
            code: Some("134567890123456789".into()),
            method: None,
        })
        .await
    })
}

fn log_lines(d: &Daemon, needle: &str) -> usize {
    std::fs::read_to_string(d.log_path())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_responses_approve_nothing_and_the_hosts_signed_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let d = Daemon::start(&dir.path().join("t"), "T-SIG", &broker.url(), "");
    wait_online(&d).await;
    let root = "pos/v1/T-SIG";
    let mut peer = Peer::connect(broker.port, &[format!("{root}/req")]).await;

    // No host runs: the sale waits for an answer to its authorize request.
    let sale_task = spawn_sale(&d, "8.00");
    // The attacker reads the real req_id on `req`.
    let req = peer
        .next(&format!("{root}/req"), |v| v["op"] == "authorize")
        .await;
    let txn_id = req["txn_id"].as_str().unwrap().to_string();
    let approve = serde_json::to_vec(&json!({
        "req_id": req["req_id"], "txn_id": txn_id, "status": "approved", "host_ref": "FORGED"
    }))
    .unwrap();
    let resp = format!("{root}/resp");
    let host = host_signer();
    let stranger = HostSigner::from_seed(host.key_id, &[0x66; 32]);
    let forgeries = [
        // Plain JSON, as the topic carried before signatures.
        approve.clone(),
        // Another key under the host's key id.
        stranger.seal_json("T-SIG", HostKind::Resp, &approve),
        // The host's real signature, for another terminal.
        host.seal_json("T-OTHER", HostKind::Resp, &approve),
        // The host's real signature, for another topic.
        host.seal_json("T-SIG", HostKind::Notify, &approve),
    ];
    for f in forgeries {
        peer.publish(resp.clone(), f).await;
    }
    settle(&d).await;
    assert_eq!(
        txn_state(&d, &txn_id).await,
        "authorizing",
        "a forged approval approved the sale"
    );
    assert!(!sale_task.is_finished());
    let s = status_of(&d).await;
    let h = &s["host_messages"];
    assert_eq!(h["keys"], json!([1]), "{h}");
    assert_eq!(h["unsigned_accepted"], false);
    assert_eq!(h["refused"]["resp"], 4, "{h}");
    assert_eq!(h["last_refusal"]["kind"], "resp");
    assert_eq!(h["last_refusal"]["code"], "bad_signature");
    // The first refusal of the kind is logged (with its reason), the others only counted.
    assert_eq!(log_lines(&d, "host message dropped: resp refused"), 1);
    assert_eq!(log_lines(&d, "not a signed envelope"), 1);

    // The host's own signed answer is taken.
    peer.publish(resp, host.seal_json("T-SIG", HostKind::Resp, &approve))
        .await;
    let r = tokio::time::timeout(WAIT, sale_task)
        .await
        .expect("the sale ends")
        .unwrap()
        .expect("approved");
    assert_eq!(r["result"], "approved", "{r}");
    assert_eq!(status_of(&d).await["host_messages"]["refused"]["resp"], 4);

    // posctl says the same in words.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_posctl"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("signed by host key 1") && text.contains("resp 4"),
        "{text}"
    );
}

/// A hostile peer floods `resp` with forgeries that cost a full verification each (a real
/// signature, of other bytes): the terminal checks at most `REFUSALS_PER_SECOND` a second,
/// refuses the rest unchecked, says so once, stays online, and takes the host's signed answer
/// once the flood is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forgeries_is_checked_at_a_bounded_rate_and_the_host_is_heard_after_it() {
    use posd_core::protocol::signed::REFUSALS_PER_SECOND;
    const FLOOD: u64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let d = Daemon::start(&dir.path().join("t"), "T-FLOOD", &broker.url(), "");
    wait_online(&d).await;
    let root = "pos/v1/T-FLOOD";
    let mut peer = Peer::connect(broker.port, &[format!("{root}/req")]).await;
    let resp = format!("{root}/resp");
    let host = host_signer();
    let stranger = HostSigner::from_seed(host.key_id, &[0x66; 32]);
    let forged = stranger.seal_json(
        "T-FLOOD",
        HostKind::Resp,
        br#"{"req_id":"r","txn_id":"t","status":"approved"}"#,
    );
    let started = std::time::Instant::now();
    for _ in 0..FLOOD {
        peer.publish(resp.clone(), forged.clone()).await;
    }
    // Every forgery reached the gate: refused, most of them unchecked.
    let h = tokio::time::timeout(WAIT, async {
        loop {
            let h = status_of(&d).await["host_messages"].clone();
            if h["refused"]["resp"] == FLOOD {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every forgery refused");
    let seconds = started.elapsed().as_secs();
    let unchecked = h["not_checked"].as_u64().unwrap();
    let checked = FLOOD - unchecked;
    assert!(
        checked >= REFUSALS_PER_SECOND && checked <= REFUSALS_PER_SECOND * (seconds + 2),
        "{checked} checked in {seconds} s: {h}"
    );
    assert_eq!(h["last_refusal"]["code"], "not_checked", "{h}");
    // Said once (the first forgery's own refusal, then the flood), not 3,000 times.
    assert_eq!(log_lines(&d, "host message dropped: resp refused"), 1);
    assert_eq!(log_lines(&d, "not checked: more than"), 1);
    settle(&d).await;

    // After it, the host's signed answer to a sale is checked and taken.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let sale_task = spawn_sale(&d, "3.00");
    let req = peer
        .next(&format!("{root}/req"), |v| v["op"] == "authorize")
        .await;
    let approve = serde_json::to_vec(&json!({
        "req_id": req["req_id"], "txn_id": req["txn_id"], "status": "approved", "host_ref": "H1"
    }))
    .unwrap();
    peer.publish(resp, host.seal_json("T-FLOOD", HostKind::Resp, &approve))
        .await;
    let r = tokio::time::timeout(WAIT, sale_task)
        .await
        .expect("the sale ends")
        .unwrap()
        .expect("approved");
    assert_eq!(r["result"], "approved", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_acks_and_settlements_drop_and_settle_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new();
    let broker = Mosquitto::start();
    // One event in flight at a time, so the outbox holds an event not yet published.
    let d = Daemon::start_custom(
        &dir.path().join("t"),
        "T-ACK",
        &broker.url(),
        &platform.offline_toml(""),
        "warn",
        &format!("inflight_window = 1\n{}", host_signer().toml_entry()),
    );
    wait_online(&d).await;
    let root = "pos/v1/T-ACK";
    let mut peer = Peer::connect(broker.port, &[format!("{root}/events")]).await;
    let mut w = platform.wallet(77, 100_000);
    let first = sale(&d, "1.00", &w.next_code()).await.unwrap();
    let second = sale(&d, "2.00", &w.next_code()).await.unwrap();
    let first_id = first["txn_id"].as_str().unwrap().to_string();
    let mut c = d.client().await;
    let q = c.call_json(ctl::Queue {}).await.unwrap();
    let last = q["last_seq"].as_u64().unwrap();
    assert_eq!(q["pending"], last, "no host: nothing acknowledged");
    assert!(last >= 2, "{q}");
    // Only the first event is out (the window is 1); the second waits for its ack.
    let ev = peer.next(&format!("{root}/events"), |_| true).await;
    assert_eq!(ev["seq"], 1, "{ev}");

    let ack = format!("{root}/ack");
    let upto = |n: u64| format!(r#"{{"upto_seq":{n}}}"#).into_bytes();
    let host = host_signer();
    // Forged: plain, and signed with another key.
    peer.publish(ack.clone(), upto(last)).await;
    let stranger = HostSigner::from_seed(1, &[0x66; 32]);
    peer.publish(
        ack.clone(),
        stranger.seal_json("T-ACK", HostKind::Ack, &upto(last)),
    )
    .await;
    // Signed by the host, but beyond what was published (though not beyond the journal).
    peer.publish(
        ack.clone(),
        host.seal_json("T-ACK", HostKind::Ack, &upto(last)),
    )
    .await;
    // A forged settlement of the first sale.
    let settled =
        serde_json::to_vec(&json!({"type": "settlement", "txn_id": first_id, "status": "settled"}))
            .unwrap();
    peer.publish(format!("{root}/notify"), settled.clone())
        .await;
    settle(&d).await;

    let q = c.call_json(ctl::Queue {}).await.unwrap();
    assert_eq!(q["pending"], last, "an event was dropped: {q}");
    assert_eq!(q["acked_seq"], 0);
    assert_eq!(txn_state(&d, &first_id).await, "approved_offline");
    let h = status_of(&d).await["host_messages"].clone();
    assert_eq!(h["refused"]["ack"], 3, "{h}");
    assert_eq!(h["refused"]["notify"], 1, "{h}");
    assert_eq!(log_lines(&d, "host message dropped: ack refused"), 1);
    assert_eq!(log_lines(&d, "host message dropped: notify refused"), 1);

    // The host's signed ack of what was published drops it; then the next event goes out and
    // its ack drains the rest.
    peer.publish(
        ack.clone(),
        host.seal_json("T-ACK", HostKind::Ack, &upto(1)),
    )
    .await;
    for seq in 2..=last {
        let ev = peer
            .next(&format!("{root}/events"), |v| v["seq"] == seq)
            .await;
        assert_eq!(ev["seq"], seq);
        peer.publish(
            ack.clone(),
            host.seal_json("T-ACK", HostKind::Ack, &upto(seq)),
        )
        .await;
    }
    wait_drained(&d, WAIT).await;
    // And the host's signed settlement settles.
    peer.publish(
        format!("{root}/notify"),
        host.seal_json("T-ACK", HostKind::Notify, &settled),
    )
    .await;
    eventually(WAIT, "the first sale settled", || async {
        (txn_state(&d, &first_id).await == "settled").then_some(())
    })
    .await;
    assert_eq!(
        txn_state(&d, second["txn_id"].as_str().unwrap()).await,
        "approved_offline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_opt_out_takes_unsigned_answers_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let _host = Host::start_unsigned(&broker.url(), &dir.path().join("host.sqlite"));
    let d = Daemon::start_custom(
        &dir.path().join("t"),
        "T-LAB",
        &broker.url(),
        "",
        "warn",
        "lab_accept_unsigned = true\n",
    );
    wait_online(&d).await;
    let r = sale(&d, "3.00", "134567890123456789").await.unwrap();
    assert_eq!(r["result"], "approved", "{r}");
    wait_drained(&d, WAIT).await;
    let s = status_of(&d).await;
    assert_eq!(s["host_messages"]["unsigned_accepted"], true, "{s}");
    assert_eq!(s["host_messages"]["keys"], json!([]));
    assert_eq!(s["host_messages"]["refused"]["resp"], 0);
    assert!(log_lines(&d, "lab_accept_unsigned is on") >= 1);
    // The retained MQTT status carries it too, for the fleet to see.
    let mut peer = Peer::connect(broker.port, &["pos/v1/T-LAB/status".into()]).await;
    let retained = peer
        .next("pos/v1/T-LAB/status", |v| v["online"] == true)
        .await;
    assert_eq!(retained["host_messages"]["unsigned_accepted"], true);
}

/// Old signed messages replayed in a loop — an ack that moves nothing, an answer to no request
/// in flight, a settlement of nothing — do not make a silent host look alive: only answers to
/// what the host owes do (docs/payments.md, "The link's state").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_signed_messages_do_not_hide_a_silent_host() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start();
    let d = Daemon::start_custom(
        &dir.path().join("t"),
        "T-REPLAY",
        &broker.url(),
        "",
        "warn",
        &format!("host_silence_s = 2\n{}", host_signer().toml_entry()),
    );
    wait_online(&d).await;
    let root = "pos/v1/T-REPLAY";
    let mut peer = Peer::connect(broker.port, &[format!("{root}/req")]).await;
    // No host runs: the sale's authorize is owed an answer from now on.
    let _sale = spawn_sale(&d, "8.00");
    peer.next(&format!("{root}/req"), |v| v["op"] == "authorize")
        .await;
    let host = host_signer();
    let old_resp = json!({
        "req_id": "r-1700000000000-1", "txn_id": "0190e1a2-0000-7000-8000-000000000001",
        "status": "approved", "host_ref": "H1"
    });
    let old_settlement = json!({
        "type": "settlement", "txn_id": "0190e1a2-0000-7000-8000-000000000002",
        "status": "settled"
    });
    let replays = [
        (
            format!("{root}/ack"),
            host.seal_json("T-REPLAY", HostKind::Ack, br#"{"upto_seq":0}"#),
        ),
        (
            format!("{root}/resp"),
            host.seal_json(
                "T-REPLAY",
                HostKind::Resp,
                &serde_json::to_vec(&old_resp).unwrap(),
            ),
        ),
        (
            format!("{root}/notify"),
            host.seal_json(
                "T-REPLAY",
                HostKind::Notify,
                &serde_json::to_vec(&old_settlement).unwrap(),
            ),
        ),
    ];
    let until = std::time::Instant::now() + Duration::from_millis(3500);
    while std::time::Instant::now() < until {
        for (topic, body) in &replays {
            peer.publish(topic.clone(), body.clone()).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = status_of(&d).await;
    assert_eq!(st["online"], true, "{st}");
    assert_eq!(st["broker"]["state"], "host_silent", "{st}");
    // The replays carried genuine signatures: none of them was refused as a forgery.
    for kind in ["ack", "resp", "notify"] {
        let refused = &st["host_messages"]["refused"][kind];
        assert_eq!(refused.as_u64().unwrap_or(0), 0, "{kind}: {st}");
    }
}
