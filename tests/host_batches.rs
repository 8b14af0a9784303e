//! The sandbox host closes a batch of events when it is full, not only when its timer runs out
//! (`posd-sandbox host --batch-max`): under a steady stream a terminal's window is moved on by
//! full batches' acks, not by the host's clock (docs/performance.md, stop 43). A real mosquitto,
//! the host as its own process, and a bare MQTT client in the terminal's place that reads the
//! host's signed acks as posd does.

mod common;
use common::*;
use posd_core::protocol::signed::{self, HostKeys, HostKind};
use posd_core::protocol::{Event as PosEvent, Topics};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TERMINAL: &str = "TB1";

fn event(seq: u64) -> Vec<u8> {
    let ev = PosEvent {
        seq,
        event_id: format!("batch-ev-{seq}"),
        txn_id: format!("batch-txn-{seq}"),
        kind: "sale".into(),
        state: "declined".into(),
        method: "payment_code".into(),
        channel: Some("wechat".into()),
        amount: 100,
        currency: "CNY".into(),
        at: 1_000,
        reason: Some("test".into()),
        host_ref: None,
        code_masked: None,
        detail: None,
    };
    serde_json::to_vec(&ev).expect("event json")
}

/// The `upto_seq` of each signed ack on the terminal's `ack` topic, as it arrives; an ack that
/// is not the host's signed one arrives as an error.
fn acks(port: u16) -> (Client, mpsc::Receiver<Result<u64, String>>) {
    let topics = Topics::new("pos/v1", TERMINAL);
    let opts = MqttOptions::new("batch-terminal", "127.0.0.1", port);
    let (client, mut conn) = Client::new(opts, 64);
    client
        .subscribe(topics.ack(), QoS::AtLeastOnce)
        .expect("subscribe");
    let keys = HostKeys::from_config(&[host_signer().config()]).expect("keys");
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready) = mpsc::channel();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let upto = signed::open(&p.payload, TERMINAL, HostKind::Ack, &keys)
                        .map_err(|e| format!("not the host's signed ack: {e:?}"))
                        .and_then(|body| {
                            serde_json::from_slice::<serde_json::Value>(&body)
                                .ok()
                                .and_then(|v| v["upto_seq"].as_u64())
                                .ok_or_else(|| "an ack without upto_seq".to_string())
                        });
                    if tx.send(upto).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    ready
        .recv_timeout(Duration::from_secs(20))
        .expect("the broker acknowledges the subscription");
    (client, rx)
}

#[test]
fn a_full_batch_is_acknowledged_at_once_and_the_rest_waits_for_the_timer() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("tmp");
    // A ten-minute timer: any ack within the test came from a full batch. The client below
    // never sends again (posd would): publish only once the host's subscriptions stand.
    let ready = dir.path().join("host.ready");
    let args = [
        "--batch-ms".to_string(),
        "600000".into(),
        "--batch-max".into(),
        "4".into(),
        "--ready-file".into(),
        ready.display().to_string(),
    ];
    let host = Host::start_with_args(&broker.url(), &dir.path().join("host.sqlite"), &args);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "the host did not subscribe in 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (client, acks) = acks(broker.port);
    let topic = Topics::new("pos/v1", TERMINAL).events();
    for seq in 1..=10 {
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, event(seq))
            .expect("publish");
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.last() != Some(&8) {
        let left = deadline.saturating_duration_since(Instant::now());
        match acks.recv_timeout(left) {
            Ok(Ok(upto)) => seen.push(upto),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("acks so far {seen:?}: the host did not close its full batches"),
        }
    }
    assert_eq!(seen, vec![4, 8], "one ack per full batch of four");
    // Events 9 and 10 are a batch not yet full: stored in the open transaction, not acked.
    if let Ok(ack) = acks.recv_timeout(Duration::from_secs(1)) {
        panic!("{ack:?} before the batch of two was full or old enough");
    }
    drop(host);
}
