//! Unit tests of the hub shell's slow-client delivery.

use super::*;

#[test]
fn a_client_that_does_not_read_loses_lossy_frames_then_is_closed_never_blocking() {
    let policy = QueuePolicy {
        capacity: 8,
        lossy_below: 2,
    };
    let (tx, mut rx) = mpsc::channel(policy.capacity);
    let (kill, _kill_rx) = oneshot::channel();
    let client = WsClient { queue: tx, kill };
    let f = |n: u8| Bytes::from(vec![n]);
    assert_eq!(
        deliver(&policy, &client, Class::Lossy, f(0)),
        Admit::Enqueue
    );
    assert_eq!(
        deliver(&policy, &client, Class::Reliable, f(1)),
        Admit::Enqueue
    );
    assert_eq!(deliver(&policy, &client, Class::Lossy, f(2)), Admit::Drop);
    for i in 3..9 {
        assert_eq!(
            deliver(&policy, &client, Class::Reliable, f(i)),
            Admit::Enqueue
        );
    }
    assert_eq!(deliver(&policy, &client, Class::Lossy, f(9)), Admit::Drop);
    assert_eq!(
        deliver(&policy, &client, Class::Reliable, f(10)),
        Admit::Close
    );
    // What was queued is intact and in order: the lossy frame went first, chat never.
    let mut got = Vec::new();
    while let Ok(b) = rx.try_recv() {
        got.push(b[0]);
    }
    assert_eq!(got, vec![0, 1, 3, 4, 5, 6, 7, 8]);
    // A reader that caught up gets lossy frames again.
    assert_eq!(
        deliver(&policy, &client, Class::Lossy, f(11)),
        Admit::Enqueue
    );
}
