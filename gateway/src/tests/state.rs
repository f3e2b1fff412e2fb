//! Unit tests of `rooms/core.rs` (kept in their own file).

use super::*;
use prost::Message;
use std::time::Duration;

use crate::webhooks::Protocol;
use venue_proto::v1;

fn room(id: i64, name: &str) -> Room {
    Room {
        id: RoomId(id),
        name: name.into(),
        title: "T".into(),
        layout: 1,
        created_at: 0,
    }
}

fn frames(effects: &[Effect]) -> Vec<v1::StageState> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::RoomState(_, b) => match v1::ServerMessage::decode(b.clone()).ok()?.body? {
                v1::server_message::Body::Stage(s) => Some(s),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn publisher(room: RoomId, streamer: i64, participant: u64, protocol: Protocol) -> SessionInfo {
    SessionInfo {
        room,
        kind: SessionKind::Publisher {
            streamer: StreamerId(streamer),
            participant: ParticipantId(participant),
            protocol,
        },
        etag: String::new(),
    }
}

fn stage_of(effects: &[Effect]) -> Option<Vec<Option<ParticipantId>>> {
    effects.iter().find_map(|e| match e {
        Effect::SetStage(_, s) => Some(s.clone()),
        _ => None,
    })
}

#[test]
fn live_is_keyed_by_session_so_a_replaced_publisher_stays_live() {
    let t = Instant::now();
    let mut core = Core::new(4, 0);
    let fx = core.load_room(
        &room(1, "main"),
        1,
        vec![Some((StreamerId(7), "Ann".into()))],
        t,
    );
    // On stage but no session yet: the slot shows nobody.
    assert!(
        matches!(fx[0], Effect::SetStage(venue_sfu::RoomId(1), ref s) if s == &vec![None, None, None, None])
    );
    assert_eq!(frames(&fx)[0].slots.len(), 4);
    let r = RoomId(1);
    // Each publisher session has its own participant id; the slot shows the active one.
    let fx = core.session_created(SessionId(1), publisher(r, 7, 71, Protocol::Whip), t);
    assert_eq!(
        stage_of(&fx),
        Some(vec![Some(ParticipantId(71)), None, None, None])
    );
    let fx = core.on_event(
        SfuEvent::PublisherUp {
            room: r.into(),
            participant: ParticipantId(71),
            session: SessionId(1),
        },
        t,
    );
    assert!(frames(&fx)[0].slots[0].live);
    // The streamer reconnects: the new session replaces the old (closed), the slot follows,
    // and the streamer stays live while the old one is still up.
    let fx = core.session_created(SessionId(2), publisher(r, 7, 72, Protocol::Whip), t);
    assert!(fx.contains(&Effect::Close(SessionId(1))), "{fx:?}");
    assert_eq!(
        stage_of(&fx),
        Some(vec![Some(ParticipantId(72)), None, None, None])
    );
    assert!(frames(&fx).is_empty(), "still live: {fx:?}");
    assert_eq!(
        core.active_participant(StreamerId(7)),
        Some(ParticipantId(72))
    );
    let fx = core.on_event(
        SfuEvent::PublisherUp {
            room: r.into(),
            participant: ParticipantId(72),
            session: SessionId(2),
        },
        t,
    );
    assert!(fx.is_empty());
    let fx = core.on_event(
        SfuEvent::PublisherDown {
            room: r.into(),
            participant: ParticipantId(71),
            session: SessionId(1),
        },
        t,
    );
    assert!(fx.is_empty(), "{fx:?}");
    assert!(core.is_live(StreamerId(7)));
    assert!(core.view("main").expect("room").slots[0].live);
    let fx = core.on_event(
        SfuEvent::PublisherDown {
            room: r.into(),
            participant: ParticipantId(72),
            session: SessionId(2),
        },
        t,
    );
    assert!(!frames(&fx)[0].slots[0].live);
    assert_eq!(stage_of(&fx), Some(vec![None, None, None, None]));
    assert!(!core.is_live(StreamerId(7)));
}

#[test]
fn a_preview_follows_its_streamers_active_session() {
    let t = Instant::now();
    let mut core = Core::new(1, 0);
    core.load_room(&room(1, "main"), 1, vec![], t);
    let r = RoomId(1);
    let preview = SessionInfo {
        room: r,
        kind: SessionKind::Preview(StreamerId(3)),
        etag: String::new(),
    };
    // Opened while the streamer is offline: pointed at nobody.
    let fx = core.session_created(SessionId(5), preview, t);
    assert_eq!(fx, vec![Effect::Retarget(SessionId(5), None)]);
    let fx = core.session_created(SessionId(6), publisher(r, 3, 31, Protocol::Rtmp), t);
    assert!(
        fx.contains(&Effect::Retarget(SessionId(5), Some(ParticipantId(31)))),
        "{fx:?}"
    );
    let fx = core.session_created(SessionId(7), publisher(r, 3, 32, Protocol::Whip), t);
    assert!(
        fx.contains(&Effect::Retarget(SessionId(5), Some(ParticipantId(32)))),
        "{fx:?}"
    );
    // A preview opened now starts on the active session.
    let again = SessionInfo {
        room: r,
        kind: SessionKind::Preview(StreamerId(3)),
        etag: String::new(),
    };
    let fx = core.session_created(SessionId(8), again, t);
    assert_eq!(
        fx,
        vec![Effect::Retarget(SessionId(8), Some(ParticipantId(32)))]
    );
}

#[test]
fn viewer_counts_are_pushed_at_most_once_a_second() {
    let t = Instant::now();
    let mut core = Core::new(2, 0);
    core.load_room(&room(1, "main"), 1, vec![], t);
    let fx = core.on_event(
        SfuEvent::SubscriberUp {
            room: RoomId(1).into(),
            session: SessionId(10),
        },
        t,
    );
    assert!(fx.is_empty(), "held back: a frame was pushed at load time");
    assert!(core.tick(t + Duration::from_millis(500)).is_empty());
    let fx = core.tick(t + Duration::from_secs(1));
    assert_eq!(frames(&fx)[0].viewer_count, 1);
    let t2 = t + Duration::from_secs(3);
    let fx = core.on_event(
        SfuEvent::SubscriberUp {
            room: RoomId(1).into(),
            session: SessionId(11),
        },
        t2,
    );
    assert_eq!(frames(&fx)[0].viewer_count, 2);
    assert_eq!(core.view("main").expect("room").viewer_count, 2);
    // Revisions grow.
    let fx = core.on_event(
        SfuEvent::SubscriberDown {
            room: RoomId(1).into(),
            session: SessionId(11),
        },
        t2 + Duration::from_secs(2),
    );
    assert_eq!(frames(&fx)[0].viewer_count, 1);
    assert!(frames(&fx)[0].revision > 2);
}

#[test]
fn previews_are_not_viewers() {
    let t = Instant::now();
    let mut core = Core::new(1, 0);
    core.load_room(&room(1, "main"), 1, vec![], t);
    let info = SessionInfo {
        room: RoomId(1),
        kind: SessionKind::Preview(StreamerId(3)),
        etag: "\"x\"".into(),
    };
    core.session_created(SessionId(5), info, t);
    core.on_event(
        SfuEvent::SubscriberUp {
            room: RoomId(1).into(),
            session: SessionId(5),
        },
        t,
    );
    assert_eq!(core.view("main").expect("room").viewer_count, 0);
    // Up before registration: removed when registered.
    core.on_event(
        SfuEvent::SubscriberUp {
            room: RoomId(1).into(),
            session: SessionId(6),
        },
        t,
    );
    let info = SessionInfo {
        room: RoomId(1),
        kind: SessionKind::Preview(StreamerId(3)),
        etag: "\"y\"".into(),
    };
    core.session_created(SessionId(6), info, t);
    assert_eq!(core.stats().viewers, 0);
}

#[test]
fn removing_a_streamer_closes_its_sessions_and_empties_its_slot() {
    let t = Instant::now();
    let mut core = Core::new(2, 0);
    core.load_room(
        &room(1, "main"),
        2,
        vec![None, Some((StreamerId(4), "Dee".into()))],
        t,
    );
    core.session_created(SessionId(9), publisher(RoomId(1), 4, 40, Protocol::Whip), t);
    core.on_event(
        SfuEvent::PublisherUp {
            room: RoomId(1).into(),
            participant: ParticipantId(40),
            session: SessionId(9),
        },
        t,
    );
    let fx = core.remove_streamer(RoomId(1), StreamerId(4), t);
    assert!(fx.contains(&Effect::Close(SessionId(9))));
    assert!(fx.contains(&Effect::SetStage(venue_sfu::RoomId(1), vec![None, None])));
    assert_eq!(frames(&fx)[0].slots[1].streamer_id, 0);
    assert!(core.session(SessionId(9)).is_none());
    assert!(!core.is_live(StreamerId(4)));
}

#[test]
fn a_closed_window_ends_the_publishers_but_keeps_the_stage() {
    let t = Instant::now();
    let mut core = Core::new(4, 0);
    core.load_room(
        &room(1, "main"),
        1,
        vec![Some((StreamerId(7), "Ann".into()))],
        t,
    );
    let (r, p) = (RoomId(1), ParticipantId(70));
    let publisher = publisher(r, 7, 70, Protocol::Rtmp);
    let preview = SessionInfo {
        kind: SessionKind::Preview(StreamerId(7)),
        ..publisher.clone()
    };
    core.session_created(SessionId(1), publisher, t);
    core.session_created(SessionId(2), preview, t);
    core.on_event(
        SfuEvent::PublisherUp {
            room: r.into(),
            participant: p,
            session: SessionId(1),
        },
        t,
    );
    let fx = core.close_streamer_sessions(RoomId(1), StreamerId(7), false, t);
    assert_eq!(fx[0], Effect::Close(SessionId(1)));
    assert!(
        matches!(&fx[1], Effect::PublishStopped(n) if n.session == SessionId(1) && n.protocol == Protocol::Rtmp),
        "{fx:?}"
    );
    // The slot and the admin's preview no longer show the ended session.
    assert_eq!(stage_of(&fx), Some(vec![None, None, None, None]));
    assert!(fx.contains(&Effect::Retarget(SessionId(2), None)), "{fx:?}");
    assert!(
        fx.contains(&Effect::LiveChanged {
            room: RoomId(1),
            streamer: StreamerId(7),
            live: false
        }),
        "the cluster hears it went offline here: {fx:?}"
    );
    assert_eq!(fx.len(), 6, "{fx:?}");
    let stage = &frames(&fx)[0];
    assert_eq!(stage.slots[0].streamer_id, 7);
    assert!(!stage.slots[0].live);
    assert!(core.session(SessionId(1)).is_none());
    assert!(
        core.session(SessionId(2)).is_some(),
        "the admin's preview stays"
    );
    // Nothing left to close: no effects.
    assert!(
        core.close_streamer_sessions(RoomId(1), StreamerId(7), false, t)
            .is_empty()
    );
}

fn publish_notices(effects: &[Effect]) -> Vec<(bool, SessionId)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::PublishStarted(n) => Some((true, n.session)),
            Effect::PublishStopped(n) => Some((false, n.session)),
            _ => None,
        })
        .collect()
}

#[test]
fn each_publisher_session_is_announced_started_and_stopped_once() {
    let t = Instant::now();
    let mut core = Core::new(1, 0);
    core.load_room(&room(1, "main"), 1, vec![], t);
    let (r, p) = (RoomId(1), ParticipantId(40));
    let info = |protocol| publisher(r, 4, 40, protocol);
    // The SFU's PublisherUp may overtake the registration: still one start, with the
    // registered protocol and the room's name.
    let up = core.on_event(
        SfuEvent::PublisherUp {
            room: r.into(),
            participant: p,
            session: SessionId(1),
        },
        t,
    );
    assert!(publish_notices(&up).is_empty());
    let fx = core.session_created(SessionId(1), info(Protocol::Rtmp), t);
    let [
        Effect::PublishStarted(n),
        Effect::LiveChanged {
            live: true,
            streamer: StreamerId(4),
            ..
        },
    ] = fx.as_slice()
    else {
        panic!("one start, live here: {fx:?}");
    };
    assert_eq!(
        (n.room.as_str(), n.streamer, n.protocol),
        ("main", StreamerId(4), Protocol::Rtmp)
    );
    // Closed through its resource URL, then the SFU's PublisherDown: one stop.
    let fx = core.session_closed(SessionId(1), t);
    assert_eq!(publish_notices(&fx), vec![(false, SessionId(1))]);
    let fx = core.on_event(
        SfuEvent::PublisherDown {
            room: r.into(),
            participant: p,
            session: SessionId(1),
        },
        t,
    );
    assert!(publish_notices(&fx).is_empty(), "{fx:?}");

    // A session ended by the SFU (replaced or disconnected), and one by a deleted streamer.
    core.session_created(SessionId(2), info(Protocol::Whip), t);
    let fx = core.on_event(
        SfuEvent::PublisherDown {
            room: r.into(),
            participant: p,
            session: SessionId(2),
        },
        t,
    );
    assert_eq!(publish_notices(&fx), vec![(false, SessionId(2))]);
    core.session_created(SessionId(3), info(Protocol::Whip), t);
    let fx = core.remove_streamer(RoomId(1), StreamerId(4), t);
    assert_eq!(publish_notices(&fx), vec![(false, SessionId(3))]);
    assert!(publish_notices(&core.session_closed(SessionId(3), t)).is_empty());

    // Viewers and previews are never announced.
    let fx = core.session_created(
        SessionId(4),
        SessionInfo {
            room: r,
            kind: SessionKind::Viewer,
            etag: String::new(),
        },
        t,
    );
    assert!(publish_notices(&fx).is_empty());
}

/// Cluster mode (issue 11 item 4): a stage streamer live on another node shows live; a
/// viewer here makes the core open one relay from that node, whose participant then fills
/// the slot; the relay closes `RELAY_IDLE` after the last viewer left, and a relay that went
/// down is reopened while still needed.
#[test]
fn a_remote_stage_streamer_is_relayed_while_viewers_need_it() {
    use crate::rooms::relays::{RELAY_IDLE, RELAY_RETRY};
    let t = Instant::now();
    let mut core = Core::new(2, 0);
    let r = RoomId(1);
    core.load_room(
        &room(1, "main"),
        2,
        vec![None, Some((StreamerId(7), "Ann".into()))],
        t,
    );
    // Ann is live on node-a: the room shows her live, but nobody watches here: no relay.
    let fx = core.set_owners(r, vec![(StreamerId(7), Some("node-a".into()))], t);
    assert!(frames(&fx).last().is_some_and(|f| f.slots[1].live));
    assert!(!fx.iter().any(|e| matches!(e, Effect::OpenRelay { .. })));
    assert_eq!(stage_of(&fx), Some(vec![None, None]));

    // A viewer registers: one relay from node-a is opened, once.
    let viewer = SessionId(40);
    let info = SessionInfo {
        room: r,
        kind: SessionKind::Viewer,
        etag: String::new(),
    };
    let fx = core.session_created(viewer, info, t);
    assert_eq!(
        fx.iter()
            .filter(|e| matches!(e, Effect::OpenRelay { origin, .. } if origin == "node-a"))
            .count(),
        1
    );
    assert!(
        !core
            .tick(t)
            .iter()
            .any(|e| matches!(e, Effect::OpenRelay { .. }))
    );

    // It opens: slot 1 shows the relay's participant for origin slot 1.
    let relay = SessionId(50);
    let fx = core.relay_opened(
        r,
        "node-a".into(),
        relay,
        vec![ParticipantId(100), ParticipantId(101)],
    );
    assert_eq!(stage_of(&fx), Some(vec![None, Some(ParticipantId(101))]));
    assert_eq!(core.stats().relays_in, 1);

    // It goes down: the slot empties and the relay is reopened after RELAY_RETRY.
    let fx = core.on_event(
        SfuEvent::RelayDown {
            room: r.into(),
            session: relay,
        },
        t,
    );
    assert_eq!(stage_of(&fx), Some(vec![None, None]));
    assert!(
        !core
            .tick(t)
            .iter()
            .any(|e| matches!(e, Effect::OpenRelay { .. }))
    );
    let later = t + RELAY_RETRY;
    assert!(
        core.tick(later)
            .iter()
            .any(|e| matches!(e, Effect::OpenRelay { .. }))
    );
    let relay = SessionId(51);
    core.relay_opened(
        r,
        "node-a".into(),
        relay,
        vec![ParticipantId(200), ParticipantId(201)],
    );

    // The viewer leaves: the relay stays for RELAY_IDLE (a viewer may come back), then closes.
    core.session_closed(viewer, later);
    assert!(!core.tick(later).contains(&Effect::Close(relay)));
    let idle = later + RELAY_IDLE - Duration::from_millis(1);
    assert!(!core.tick(idle).contains(&Effect::Close(relay)));
    assert!(
        core.tick(later + RELAY_IDLE)
            .contains(&Effect::Close(relay))
    );
    assert_eq!(core.stats().relays_in, 0);

    // Ann goes offline on node-a: offline here too.
    let fx = core.set_owners(r, vec![(StreamerId(7), None)], later);
    assert!(frames(&fx).last().is_some_and(|f| !f.slots[1].live));
}

/// A relay session of another node (origin side) is not a viewer, and a local publisher's
/// live changes are announced for the cluster (`LiveChanged`) once per change.
#[test]
fn relays_are_not_viewers_and_local_live_changes_are_announced() {
    let t = Instant::now();
    let mut core = Core::new(2, 0);
    let r = RoomId(1);
    core.load_room(
        &room(1, "main"),
        1,
        vec![Some((StreamerId(7), "Ann".into()))],
        t,
    );
    let relay = SessionId(60);
    core.session_created(
        relay,
        SessionInfo {
            room: r,
            kind: SessionKind::Relay,
            etag: String::new(),
        },
        t,
    );
    core.on_event(
        SfuEvent::SubscriberUp {
            room: r.into(),
            session: relay,
        },
        t,
    );
    assert_eq!(core.webrtc_viewers(r), 0);
    assert_eq!((core.stats().viewers, core.stats().relays_out), (0, 1));

    let s = SessionId(61);
    core.session_created(s, publisher(r, 7, 9, Protocol::Whip), t);
    let up = core.on_event(
        SfuEvent::PublisherUp {
            room: r.into(),
            participant: ParticipantId(9),
            session: s,
        },
        t,
    );
    let live = |fx: &[Effect], want: bool| {
        fx.iter()
            .filter(|e| matches!(e, Effect::LiveChanged { live, streamer: StreamerId(7), .. } if *live == want))
            .count()
    };
    assert_eq!(live(&up, true), 1);
    assert_eq!(core.live_here(), vec![StreamerId(7)]);
    let down = core.on_event(
        SfuEvent::PublisherDown {
            room: r.into(),
            participant: ParticipantId(9),
            session: s,
        },
        t,
    );
    assert_eq!(live(&down, false), 1);
    assert!(core.live_here().is_empty());
}

/// A program composed on this node needs a remote stage streamer's media like a viewer.
#[test]
fn a_program_composed_here_opens_the_relay_without_viewers() {
    let t = Instant::now();
    let mut core = Core::new(1, 0);
    let r = RoomId(1);
    core.load_room(
        &room(1, "main"),
        1,
        vec![Some((StreamerId(7), "Ann".into()))],
        t,
    );
    let fx = core.set_owners(r, vec![(StreamerId(7), Some("node-a".into()))], t);
    assert!(!fx.iter().any(|e| matches!(e, Effect::OpenRelay { .. })));
    let fx = core.set_program(r, true, t);
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::OpenRelay { origin, .. } if origin == "node-a"))
    );
    assert!(
        core.set_program(r, true, t).is_empty(),
        "no change, no effect"
    );
}
