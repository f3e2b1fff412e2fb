//! Unit tests of `webhooks.rs` (kept in their own file): signature format and verification,
//! the retry policy and backoff schedule, queue-full drops, the JSON body.

use super::*;
use rand::SeedableRng;

const SECRET: &[u8] = b"whsec-test-secret-0123";
const BODY: &[u8] = br#"{"id":"evt_1","type":"slot.started"}"#;

#[test]
fn the_signature_is_a_timestamped_hmac_sha256_in_hex() {
    let signer = Signer::new(SECRET).expect("any key length works");
    // Computed independently: python3 -c 'import hmac,hashlib;
    // print(hmac.new(b"whsec-test-secret-0123", b"1767225600." + BODY, hashlib.sha256).hexdigest())'
    assert_eq!(
        signer.header(1_767_225_600, BODY),
        "t=1767225600,v1=36db6a3caa7915529482c566675b5c7dbfb8b3969fccfbdfee923e8d4403c21d"
    );
    // The HMAC-SHA256 of Wikipedia's example ("key", the quick brown fox) — keyed the same way.
    let mut mac = HmacSha256::new_from_slice(b"key").expect("key");
    mac.update(b"The quick brown fox jumps over the lazy dog");
    assert_eq!(
        hex::encode(mac.finalize().into_bytes()),
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
}

#[test]
fn verify_accepts_the_signature_and_refuses_tampering_staleness_and_junk() {
    let signer = Signer::new(SECRET).expect("signer");
    let t = 1_767_225_600;
    let header = signer.header(t, BODY);
    let tolerance = Duration::from_secs(300);
    assert_eq!(signer.verify(&header, BODY, t + 10, tolerance), Ok(()));
    // Another v1 (a rotated secret) next to the right one is fine.
    let rotated = format!("{header},v1={}", "00".repeat(32));
    assert_eq!(signer.verify(&rotated, BODY, t, tolerance), Ok(()));
    // A changed body, a changed timestamp, another secret.
    let tampered = br#"{"id":"evt_1","type":"slot.ended"}"#;
    assert_eq!(
        signer.verify(&header, tampered, t, tolerance),
        Err(VerifyError::Mismatch)
    );
    let moved = header.replacen(&t.to_string(), &(t + 1).to_string(), 1);
    assert_eq!(
        signer.verify(&moved, BODY, t, tolerance),
        Err(VerifyError::Mismatch)
    );
    let other = Signer::new(b"another-secret-of-16").expect("signer");
    assert_eq!(
        other.verify(&header, BODY, t, tolerance),
        Err(VerifyError::Mismatch)
    );
    // Replays outside the tolerance, either way.
    assert_eq!(
        signer.verify(&header, BODY, t + 301, tolerance),
        Err(VerifyError::Stale)
    );
    assert_eq!(
        signer.verify(&header, BODY, t - 301, tolerance),
        Err(VerifyError::Stale)
    );
    for junk in ["", "v1=abcd", "t=now,v1=abcd", "t=1767225600", "garbage"] {
        assert_eq!(
            signer.verify(junk, BODY, t, tolerance),
            Err(VerifyError::Malformed),
            "{junk:?}"
        );
    }
    assert_eq!(
        signer.verify("t=1767225600,v1=zz", BODY, t, tolerance),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn server_errors_and_timeouts_are_retried_other_client_errors_are_final() {
    assert_eq!(verdict(Outcome::Status(200)), Verdict::Delivered);
    assert_eq!(verdict(Outcome::Status(204)), Verdict::Delivered);
    for retried in [408, 429, 500, 502, 503, 504, 599] {
        assert_eq!(
            verdict(Outcome::Status(retried)),
            Verdict::Retry,
            "{retried}"
        );
    }
    assert_eq!(verdict(Outcome::Error), Verdict::Retry);
    for fatal in [100, 301, 302, 400, 401, 403, 404, 410, 413, 422] {
        assert_eq!(verdict(Outcome::Status(fatal)), Verdict::Fail, "{fatal}");
    }
}

#[test]
fn backoff_doubles_from_the_initial_wait_is_capped_at_60_s_and_jitters_within_half() {
    let policy = RetryPolicy::of(&WebhooksConfig::default());
    assert_eq!(policy.max_attempts, 6);
    let base: Vec<u64> = (1..=9).map(|n| policy.base_delay(n).as_secs()).collect();
    assert_eq!(base, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(policy.base_delay(u32::MAX), MAX_BACKOFF);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut seen = std::collections::HashSet::new();
    for retry in 1..=8 {
        let base = policy.base_delay(retry);
        for _ in 0..200 {
            let d = policy.delay(retry, None, &mut rng);
            assert!(
                d >= base / 2 && d <= base,
                "retry {retry}: {d:?} vs {base:?}"
            );
            seen.insert(d);
        }
    }
    assert!(seen.len() > 100, "the waits are jittered");
    // Retry-After raises the wait, up to the cap.
    let d = policy.delay(1, Some(Duration::from_secs(30)), &mut rng);
    assert_eq!(d, Duration::from_secs(30));
    let d = policy.delay(1, Some(Duration::from_secs(3600)), &mut rng);
    assert_eq!(d, MAX_BACKOFF);
    let small = RetryPolicy {
        max_attempts: 3,
        initial: Duration::from_millis(20),
    };
    assert_eq!(small.base_delay(1), Duration::from_millis(20));
    assert_eq!(small.base_delay(3), Duration::from_millis(80));
}

fn slot_event() -> Event {
    Event::slot(
        true,
        "main".into(),
        SlotData {
            event_id: EventId(1),
            booking_id: BookingId(2),
            streamer_id: StreamerId(3),
            artist_name: "Ann".into(),
            start: "2026-11-21T21:00:00Z".into(),
            end: "2026-11-21T21:30:00Z".into(),
        },
        DateTime::<Utc>::from_timestamp(1_795_294_800, 0).unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_and_never_waits() {
    let (webhooks, mut rx) = Webhooks::channel(2, 3);
    for _ in 0..5 {
        webhooks.emit(slot_event());
    }
    // 2 queued; 3 events × 3 URLs dropped.
    assert_eq!(
        webhooks.stats(),
        WebhookStats {
            dropped: 9,
            ..Default::default()
        }
    );
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_err());
    // Room again: accepted.
    webhooks.emit(slot_event());
    assert_eq!(webhooks.stats().dropped, 9);
    assert!(rx.try_recv().is_ok());
}

#[test]
fn disabled_webhooks_do_nothing() {
    let webhooks = Webhooks::start(&WebhooksConfig::default()).expect("no URLs: disabled");
    assert!(!webhooks.enabled());
    webhooks.emit(slot_event());
    assert_eq!(webhooks.stats(), WebhookStats::default());
}

#[test]
fn the_body_has_id_type_created_at_room_and_data() {
    let event = slot_event();
    let json: serde_json::Value =
        serde_json::from_slice(&serde_json::to_vec(&event).expect("serialises")).expect("json");
    let id = json["id"].as_str().expect("id");
    assert!(id.starts_with("evt_") && id.len() == 36, "{id}");
    assert_ne!(slot_event().id, event.id, "ids are unique");
    assert_eq!(json["type"], "slot.started");
    assert_eq!(json["created_at"], "2026-11-21T21:00:00.000Z");
    assert_eq!(json["room"], "main");
    assert_eq!(
        json["data"],
        serde_json::json!({"event_id": 1, "booking_id": 2, "streamer_id": 3,
            "artist_name": "Ann", "start": "2026-11-21T21:00:00Z", "end": "2026-11-21T21:30:00Z"})
    );
    let publish = Event::publish(
        false,
        "main".into(),
        PublishData {
            streamer_id: StreamerId(3),
            streamer_name: "Ann".into(),
            session_id: "00000000000000aa".into(),
            protocol: Protocol::Rtmp,
        },
        Utc::now(),
    );
    let json = serde_json::to_value(&publish).expect("json");
    assert_eq!(json["type"], "publish.stopped");
    assert_eq!(json["data"]["protocol"], "rtmp");
    assert_eq!(json["data"]["session_id"], "00000000000000aa");
}
