//! In-process, virtual-time tests: real str0m client peers publish and subscribe through one
//! `ShardCore`. No sockets, no sleeps: datagrams (and ICE-TCP frames) are handed across in
//! memory and the clock is a variable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc};
use venue_sfu::bridge::{BridgeMedia, VideoFrame};
use venue_sfu::shard::{self, Command, Reply, RequestId, ShardCore, TapId, TapPacket};
use venue_sfu::{
    MidLayout, Offer, ParticipantId, RoomId, SessionId, SfuConfig, SfuEvent, SubscribeTarget,
};

const ROOM: RoomId = RoomId(1);
const SERVER: &str = "10.0.0.1:5000";
/// A real 640x360 constrained-baseline SPS (libx264), so health can read the size.
const SPS_360P: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
    0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48,
];

/// A synthetic H.264 + Opus publisher: sends a keyframe on start and whenever asked.
struct PubClient {
    id: u8,
    rtc: Rtc,
    addr: SocketAddr,
    video: Mid,
    audio: Mid,
    frame: u64,
    next_video: Instant,
    next_audio: Instant,
    want_keyframe: bool,
    keyframes_sent: u32,
    /// Simulcast layers (rid, frame size in bytes); empty = no simulcast.
    layers: Vec<(&'static str, usize)>,
}

/// A WHEP-like subscriber in RTP mode: records what arrives per mid.
struct SubClient {
    rtc: Rtc,
    addr: SocketAddr,
    /// UDP, or ICE-TCP (the client has only an active TCP candidate).
    proto: Protocol,
    layout: MidLayout,
    /// Every SRTP-decrypted RTP packet as it came off the wire (str0m raw packet events, so
    /// the receiver's own jitter/probation handling cannot hide what the SFU sent):
    /// (ssrc, seq, first three payload bytes, arrival).
    rtp: Vec<(str0m::rtp::Ssrc, u16, [u8; 3], Instant)>,
    channel_frames: Vec<Vec<u8>>,
}

struct Net {
    start: Instant,
    now: Instant,
    shard: ShardCore,
    /// The local IP the "shell" reports packets arrived at (the advertised candidate's, or a
    /// private one behind a 1:1 NAT).
    local_ip: IpAddr,
    /// Every packet the shard sent: (time, destination, protocol).
    sent: Vec<(Instant, SocketAddr, Protocol)>,
    /// Client addresses whose link is cut (a closed ICE-TCP connection): nothing they send
    /// reaches the shard.
    cut: Vec<SocketAddr>,
    /// The SDP of the latest answer.
    last_answer: String,
    pubs: Vec<PubClient>,
    subs: Vec<SubClient>,
    events: Vec<SfuEvent>,
    next_port: u16,
    /// Bridge publishers: (session, id byte, frames sent).
    bridges: Vec<(SessionId, u8, u64)>,
    /// Outputs taken from the shard while waiting for a reply, handled before the next poll.
    backlog: std::collections::VecDeque<shard::Output>,
    next_request: u64,
    /// Packets the shard's stage taps put out, by tap.
    taps: Vec<(TapId, TapPacket)>,
}

fn server() -> SocketAddr {
    SERVER.parse().unwrap()
}

impl Net {
    fn new(max_slots: usize) -> Net {
        Net::with_addrs(max_slots, server(), server().ip())
    }

    /// A shard advertising `candidate` whose shell reports packets arriving at `local_ip`.
    fn with_addrs(max_slots: usize, candidate: SocketAddr, local_ip: IpAddr) -> Net {
        let config = SfuConfig {
            max_slots,
            keyframe_request_interval_ms: 100,
            ..SfuConfig::default()
        };
        Net::with_config(config, candidate, local_ip)
    }

    fn with_config(config: SfuConfig, candidate: SocketAddr, local_ip: IpAddr) -> Net {
        let now = Instant::now();
        Net {
            now,
            start: now,
            shard: ShardCore::new(0, 1, config, vec![candidate], now),
            local_ip,
            sent: vec![],
            cut: vec![],
            last_answer: String::new(),
            pubs: vec![],
            subs: vec![],
            events: vec![],
            next_port: 40000,
            bridges: vec![],
            backlog: Default::default(),
            next_request: 1,
            taps: vec![],
        }
    }

    fn client_rtc(&mut self, rtp_mode: bool, proto: Protocol) -> (Rtc, SocketAddr) {
        self.next_port += 1;
        let addr: SocketAddr = format!("10.0.0.2:{}", self.next_port).parse().unwrap();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(rtp_mode)
            .enable_raw_packets(rtp_mode)
            .build(self.now);
        let candidate = match proto {
            Protocol::Udp => Candidate::host(addr, "udp").unwrap(),
            // An active TCP candidate (RFC 6544 §4.5); the address stands for the
            // connection's source, which the shell would report.
            _ => Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Active)
                .build()
                .unwrap(),
        };
        rtc.add_local_candidate(candidate);
        (rtc, addr)
    }

    /// Gives the shard a command (at the current time).
    fn command(&mut self, cmd: Command) {
        self.shard
            .handle_input(self.now, shard::Input::Command(cmd));
    }

    /// Gives the shard a command that replies, and takes its reply from the outputs (the
    /// outputs before it wait in `backlog` for the next poll, as they would in the shard).
    fn ask(&mut self, make: impl FnOnce(RequestId) -> Command) -> Reply {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.command(make(request));
        loop {
            match self.shard.poll_output() {
                shard::Output::Reply { request: r, reply } if r == request => return *reply,
                shard::Output::Timeout(_) => panic!("no reply to {request:?}"),
                other => self.backlog.push_back(other),
            }
        }
    }

    fn close(&mut self, session: SessionId) -> Result<(), venue_sfu::SfuError> {
        let reply = self.ask(|request| Command::Close { request, session });
        reply.into_closed().unwrap()
    }

    fn answer(&mut self, rtc: &mut Rtc, pending: SdpPendingOffer, reply: Reply) -> SessionId {
        let ans = reply.into_answer().unwrap().expect("offer accepted");
        self.last_answer = ans.answer_sdp.clone();
        assert!(
            ans.answer_sdp.contains("a=candidate"),
            "answer carries server candidates"
        );
        rtc.sdp_api()
            .accept_answer(
                pending,
                SdpAnswer::from_sdp_string(&ans.answer_sdp).unwrap(),
            )
            .unwrap();
        ans.session
    }

    fn publish(&mut self, id: u8) -> SessionId {
        self.publish_layers(id, vec![])
    }

    fn publish_layers(&mut self, id: u8, layers: Vec<(&'static str, usize)>) -> SessionId {
        let (mut rtc, addr) = self.client_rtc(false, Protocol::Udp);
        let mut api = rtc.sdp_api();
        let simulcast = (!layers.is_empty()).then(|| {
            let mut s = str0m::media::Simulcast::new();
            for (rid, _) in &layers {
                s.add_send_layer(str0m::media::SimulcastLayer::new(rid));
            }
            s
        });
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let offer = Offer::parse(&offer.to_sdp_string()).unwrap();
        let session = SessionId((u64::from(id) << 16) | (self.pubs.len() as u64) << 8);
        let reply = self.ask(|request| Command::Publish {
            request,
            session,
            room: ROOM,
            participant: ParticipantId(u64::from(id)),
            offer: Box::new(offer),
        });
        let s = self.answer(&mut rtc, pending, reply);
        self.pubs.push(PubClient {
            id,
            rtc,
            addr,
            video,
            audio,
            frame: 0,
            next_video: self.now,
            next_audio: self.now,
            want_keyframe: true,
            keyframes_sent: 0,
            layers,
        });
        s
    }

    fn subscribe(&mut self, slots: usize) -> usize {
        self.subscribe_over(slots, Protocol::Udp)
    }

    fn subscribe_over(&mut self, slots: usize, proto: Protocol) -> usize {
        let (mut rtc, addr) = self.client_rtc(true, proto);
        let mut api = rtc.sdp_api();
        for _ in 0..slots {
            api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
            api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        api.add_channel("venue".into());
        api.add_channel_with_config(str0m::channel::ChannelConfig {
            label: "venue-lossy".into(),
            ordered: false,
            reliability: str0m::channel::Reliability::MaxRetransmits { retransmits: 0 },
            ..Default::default()
        });
        let (offer, pending) = api.apply().unwrap();
        let offer = Offer::parse(&offer.to_sdp_string()).unwrap();
        let layout: MidLayout = offer.layout().clone();
        assert_eq!(layout.video.len(), slots);
        let session = SessionId(0x1000 + self.subs.len() as u64 * 256);
        let reply = self.ask(|request| Command::Subscribe {
            request,
            session,
            room: ROOM,
            target: SubscribeTarget::Stage,
            offer: Box::new(offer),
        });
        self.answer(&mut rtc, pending, reply);
        self.subs.push(SubClient {
            rtc,
            addr,
            proto,
            layout,
            rtp: vec![],
            channel_frames: vec![],
        });
        self.subs.len() - 1
    }

    /// A bridge publisher (RTMP-style source) with participant id `id`.
    fn bridge(&mut self, id: u8) -> SessionId {
        let session = SessionId(0xb000 + u64::from(id) * 256);
        self.command(Command::BridgeOpen {
            session,
            room: ROOM,
            participant: ParticipantId(u64::from(id)),
        });
        self.bridges.push((session, id, 0));
        session
    }

    fn stage(&mut self, slots: Vec<Option<u8>>) {
        let slots = slots
            .into_iter()
            .map(|s| s.map(|i| ParticipantId(u64::from(i))))
            .collect();
        self.command(Command::SetStage { room: ROOM, slots });
    }

    fn deliver(&mut self, proto: Protocol, to: SocketAddr, from: SocketAddr, data: &[u8]) {
        let now = self.now;
        let rtc = self
            .pubs
            .iter_mut()
            .map(|p| (&mut p.rtc, p.addr))
            .chain(self.subs.iter_mut().map(|s| (&mut s.rtc, s.addr)))
            .find(|(_, a)| *a == to)
            .map(|(r, _)| r);
        if let Some(rtc) = rtc {
            let r = Receive::new(proto, from, to, data).unwrap();
            rtc.handle_input(Input::Receive(now, r)).unwrap();
        }
    }

    /// Runs the network for `d` of virtual time in 1 ms steps.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(1);
            let now = self.now;
            // Publishers produce media.
            for p in &mut self.pubs {
                if !p.rtc.is_connected() {
                    continue;
                }
                if now >= p.next_video {
                    p.next_video = now + Duration::from_millis(33);
                    p.frame += 1;
                    let key = std::mem::take(&mut p.want_keyframe);
                    if key {
                        p.keyframes_sent += 1;
                    }
                    let layers: Vec<(Option<&str>, usize, u8)> = if p.layers.is_empty() {
                        vec![(None, 3000, p.id)]
                    } else {
                        p.layers
                            .iter()
                            .enumerate()
                            .map(|(i, (rid, size))| (Some(*rid), *size, p.id * 10 + i as u8))
                            .collect()
                    };
                    for (rid, size, tag) in layers {
                        let mut data = Vec::new();
                        if key {
                            data.extend_from_slice(&[0, 0, 0, 1]);
                            data.extend_from_slice(SPS_360P);
                            data.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
                            data.extend_from_slice(&[0, 0, 0, 1, 0x65, tag]);
                        } else {
                            data.extend_from_slice(&[0, 0, 0, 1, 0x41, tag]);
                        }
                        data.extend(std::iter::repeat_n(0x55u8, size));
                        let mut w = p.rtc.writer(p.video).unwrap();
                        if let Some(rid) = rid {
                            w = w.rid(rid.into());
                        }
                        let pt = w
                            .payload_params()
                            .find(|pp| {
                                pp.spec().codec == Codec::H264
                                    && pp.spec().format.packetization_mode == Some(1)
                            })
                            .unwrap()
                            .pt();
                        w.write(pt, now, MediaTime::from_90khz(p.frame * 3000), data)
                            .unwrap();
                    }
                }
                if now >= p.next_audio {
                    p.next_audio = now + Duration::from_millis(20);
                    let w = p.rtc.writer(p.audio).unwrap();
                    let pt = w.payload_params().next().unwrap().pt();
                    w.write(
                        pt,
                        now,
                        MediaTime::new(p.frame * 960, str0m::media::Frequency::FORTY_EIGHT_KHZ),
                        vec![0xfc, p.id, 1, 2, 3],
                    )
                    .unwrap();
                }
            }
            // Bridge publishers: a 30-frame GOP at 30 fps (an RTMP encoder with -g 30).
            if now
                .duration_since(self.start)
                .as_millis()
                .is_multiple_of(33)
            {
                for (session, id, frame) in &mut self.bridges {
                    let keyframe = *frame % 30 == 0;
                    let nal = std::iter::once(if keyframe { 0x65 } else { 0x41 })
                        .chain(std::iter::once(*id))
                        .chain(std::iter::repeat_n(0x55, 2500))
                        .collect::<Vec<u8>>();
                    let media = BridgeMedia::Video(VideoFrame {
                        nalus: vec![Bytes::from(nal)],
                        pts_90k: *frame * 3000,
                        keyframe,
                        parameter_sets: vec![
                            Bytes::from_static(SPS_360P),
                            Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
                        ],
                    });
                    *frame += 1;
                    self.shard.handle_input(
                        now,
                        shard::Input::Command(Command::BridgeMedia {
                            session: *session,
                            media,
                        }),
                    );
                }
            }
            // Drive clients.
            let mut to_server: Vec<(SocketAddr, Vec<u8>, Protocol)> = vec![];
            for p in &mut self.pubs {
                p.rtc.handle_input(Input::Timeout(now)).unwrap();
                loop {
                    match p.rtc.poll_output().unwrap() {
                        Output::Transmit(t) => to_server.push((p.addr, t.contents.into(), t.proto)),
                        Output::Event(Event::KeyframeRequest(_)) => p.want_keyframe = true,
                        Output::Event(_) => {}
                        Output::Timeout(_) => break,
                    }
                }
            }
            for s in &mut self.subs {
                s.rtc.handle_input(Input::Timeout(now)).unwrap();
                loop {
                    match s.rtc.poll_output().unwrap() {
                        Output::Transmit(t) => {
                            assert_eq!(t.proto, s.proto, "the client sends on its own transport");
                            to_server.push((s.addr, t.contents.into(), t.proto))
                        }
                        Output::Event(Event::RawPacket(raw)) => {
                            if let str0m::rtp::RawPacket::RtpRx(h, payload) = &*raw {
                                let g = |i: usize| payload.get(i).copied().unwrap_or(0);
                                s.rtp
                                    .push((h.ssrc, h.sequence_number, [g(0), g(1), g(2)], now));
                            }
                        }
                        Output::Event(Event::ChannelData(d)) => s.channel_frames.push(d.data),
                        Output::Event(_) => {}
                        Output::Timeout(_) => break,
                    }
                }
            }
            for (from, data, proto) in to_server {
                if self.cut.contains(&from) {
                    continue;
                }
                let (source, destination_ip, contents) = (from, Some(self.local_ip), &data[..]);
                let input = if proto == Protocol::Udp {
                    shard::Input::Datagram {
                        source,
                        destination_ip,
                        contents,
                    }
                } else {
                    shard::Input::TcpFrame {
                        source,
                        destination_ip,
                        contents,
                    }
                };
                self.shard.handle_input(now, input);
            }
            self.shard.handle_input(now, shard::Input::Timeout);
            loop {
                let output = match self.backlog.pop_front() {
                    Some(o) => o,
                    None => self.shard.poll_output(),
                };
                match output {
                    shard::Output::Transmit {
                        proto,
                        source,
                        destination,
                        contents,
                    } => {
                        if std::env::var("TXDBG").is_ok() {
                            eprintln!(
                                "TX {} {} {}",
                                now.duration_since(self.start).as_millis(),
                                destination,
                                contents.len()
                            );
                        }
                        self.sent.push((now, destination, proto));
                        self.deliver(proto, destination, source, &contents)
                    }
                    shard::Output::Event(e) => self.events.push(e),
                    shard::Output::Tap { tap, packet } => self.taps.push((tap, packet)),
                    shard::Output::Broadcast(_) | shard::Output::Reply { .. } => {}
                    shard::Output::Timeout(_) => break,
                }
            }
        }
    }

    /// Packets of one m-line (RTX and unknown SSRCs left out), in arrival order.
    fn packets_of(&mut self, sub: usize, mid: Mid) -> Vec<(u16, [u8; 3], Instant)> {
        let s = &mut self.subs[sub];
        let rtp = s.rtp.clone();
        rtp.into_iter()
            .filter(|r| s.rtc.direct_api().stream_rx(&r.0).map(|x| x.mid()) == Some(mid))
            .map(|r| (r.1, r.2, r.3))
            .collect()
    }

    fn video_of(&mut self, sub: usize, slot: usize) -> Vec<(u16, [u8; 3], Instant)> {
        let mid = self.subs[sub].layout.video[slot];
        self.packets_of(sub, mid)
    }

    fn audio_of(&mut self, sub: usize, slot: usize) -> usize {
        let mid = self.subs[sub].layout.audio[slot];
        self.packets_of(sub, mid).len()
    }
}

/// The source id carried in a packet: single NAL units 0x65/0x41 carry it in byte 1, FU-A
/// start fragments (RFC 6184 §5.8) in byte 2.
fn source_of(b: [u8; 3]) -> Option<u8> {
    match b[0] & 0x1f {
        1 | 5 => Some(b[1]),
        28 if b[1] & 0x80 != 0 => Some(b[2]),
        _ => None,
    }
}

/// Whether a packet starts a keyframe (SPS, IDR, STAP-A, or FU-A start of an IDR).
fn starts_keyframe(b: [u8; 3]) -> bool {
    match b[0] & 0x1f {
        5 | 7 | 24 => true,
        28 => b[1] & 0x80 != 0 && b[1] & 0x1f == 5,
        _ => false,
    }
}

#[test]
fn publisher_on_stage_reaches_subscriber() {
    let mut net = Net::new(2);
    net.publish(1);
    net.stage(vec![Some(1)]);
    let s = net.subscribe(2);
    net.run(Duration::from_secs(2));
    assert!(net.events.iter().any(|e| matches!(
        e,
        SfuEvent::PublisherUp {
            participant: ParticipantId(1),
            ..
        }
    )));
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, SfuEvent::SubscriberUp { .. }))
    );
    let v = net.video_of(s, 0);
    assert!(v.len() > 100, "slot 0 video arrives, got {}", v.len());
    let ids: Vec<u8> = v.iter().filter_map(|x| source_of(x.1)).collect();
    assert!(
        ids.len() > 30 && ids.iter().all(|&id| id == 1),
        "frames are from source 1: {ids:?}"
    );
    assert!(net.audio_of(s, 0) > 20, "slot 0 audio arrives");
    assert!(net.video_of(s, 1).is_empty(), "slot 1 is empty");
}

#[test]
fn stage_switch_waits_for_keyframe_and_keeps_sequence_continuous() {
    let mut net = Net::new(2);
    net.publish(1);
    net.publish(2);
    net.stage(vec![Some(1)]);
    let s = net.subscribe(2);
    net.run(Duration::from_secs(1));
    let before = net.pubs[1].keyframes_sent;
    net.stage(vec![Some(2)]);
    net.run(Duration::from_secs(1));
    assert!(
        net.pubs[1].keyframes_sent > before,
        "the new source was asked for a keyframe"
    );
    let v = net.video_of(s, 0);
    let seqs: Vec<u16> = v.iter().map(|x| x.0).collect();
    eprintln!(
        "FIRST {:?} LEN {} HAS4531 {:?}",
        &seqs[..12],
        seqs.len(),
        seqs.iter().position(|&x| x == seqs[0].wrapping_add(1))
    );
    for w in v.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0.wrapping_add(1),
            "contiguous sequence numbers"
        );
    }
    let ids: Vec<u8> = v.iter().filter_map(|x| source_of(x.1)).collect();
    let first_b = ids
        .iter()
        .position(|&i| i == 2)
        .expect("source 2 arrives after the switch");
    assert!(ids[..first_b].iter().all(|&i| i == 1));
    assert!(
        ids[first_b..].iter().all(|&i| i == 2),
        "no packets of the old source after the switch"
    );
    // The first packet from source 2 belongs to a keyframe: the packet right before it in
    // arrival order on the new source must be the SPS/PPS aggregate or the IDR itself.
    let pos = v.iter().position(|x| source_of(x.1) == Some(2)).unwrap();
    let switch_pkt = v
        .iter()
        .take(pos + 1)
        .rev()
        .find(|x| source_of(x.1) != Some(1))
        .unwrap();
    assert!(
        starts_keyframe(switch_pkt.1),
        "switch happens on a keyframe, got {:x?}",
        switch_pkt.1
    );
}

#[test]
fn late_joiner_gets_a_keyframe_fast() {
    let mut net = Net::new(1);
    net.publish(1);
    net.stage(vec![Some(1)]);
    net.run(Duration::from_secs(3));
    let before = net.pubs[0].keyframes_sent;
    let join = net.now;
    let s = net.subscribe(1);
    net.run(Duration::from_millis(600));
    assert!(
        net.pubs[0].keyframes_sent > before,
        "joining asked the publisher for a keyframe"
    );
    let v = net.video_of(s, 0);
    let first = v.first().expect("video arrives");
    assert!(
        starts_keyframe(first.1),
        "first packet starts a keyframe, got {:x?}",
        first.1
    );
    assert!(
        first.2.duration_since(join) < Duration::from_millis(300),
        "first keyframe within 300 ms of the offer, took {:?}",
        first.2.duration_since(join)
    );
}

#[test]
fn publisher_leaving_empties_its_slot() {
    let mut net = Net::new(1);
    let session = net.publish(1);
    net.stage(vec![Some(1)]);
    let s = net.subscribe(1);
    net.run(Duration::from_secs(1));
    net.close(session).unwrap();
    net.run(Duration::from_millis(100));
    let n = net.video_of(s, 0).len();
    net.run(Duration::from_secs(1));
    assert_eq!(
        net.video_of(s, 0).len(),
        n,
        "nothing arrives once the publisher left"
    );
    assert!(net.events.iter().any(|e| matches!(
        e,
        SfuEvent::PublisherDown {
            participant: ParticipantId(1),
            ..
        }
    )));
    // Closing again is an error, not a panic.
    assert!(net.close(session).is_err());
}

#[test]
fn reconnect_with_same_participant_replaces_session() {
    let mut net = Net::new(1);
    let first = net.publish(1);
    net.stage(vec![Some(1)]);
    let s = net.subscribe(1);
    net.run(Duration::from_secs(1));
    let second = net.publish(1);
    assert_ne!(first, second);
    net.run(Duration::from_secs(1));
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, SfuEvent::PublisherDown { session, .. } if *session == first))
    );
    let n = net.video_of(s, 0).len();
    net.run(Duration::from_secs(1));
    assert!(
        net.video_of(s, 0).len() > n + 50,
        "the new session's video flows"
    );
}

#[test]
fn room_state_frame_reaches_data_channel() {
    let mut net = Net::new(1);
    let s = net.subscribe(1);
    net.command(Command::SetRoomState {
        room: ROOM,
        frame: Bytes::from_static(b"\x12\x02\x10\x01"),
    });
    net.run(Duration::from_secs(1));
    assert!(
        net.subs[s]
            .channel_frames
            .iter()
            .any(|f| f == b"\x12\x02\x10\x01"),
        "the state frame arrives on open"
    );
    net.command(Command::SetRoomState {
        room: ROOM,
        frame: Bytes::from_static(b"\x12\x02\x10\x02"),
    });
    net.run(Duration::from_millis(200));
    assert!(
        net.subs[s]
            .channel_frames
            .iter()
            .any(|f| f == b"\x12\x02\x10\x02"),
        "updates are broadcast"
    );
}

#[test]
fn interaction_frames_on_both_channels() {
    use venue_sfu::ChannelClass;
    let mut net = Net::new(1);
    let a = net.subscribe(1);
    let b = net.subscribe(1);
    net.run(Duration::from_secs(1));
    let opened: Vec<SessionId> = net
        .events
        .iter()
        .filter_map(|e| match e {
            SfuEvent::ChannelOpen { session, .. } => Some(*session),
            _ => None,
        })
        .collect();
    assert_eq!(opened.len(), 2, "one ChannelOpen per viewer");
    for (class, tag) in [(ChannelClass::Reliable, 1u8), (ChannelClass::Lossy, 2u8)] {
        net.command(Command::BroadcastChannel {
            room: ROOM,
            class,
            frame: Bytes::from(vec![0xb0, tag]),
        });
    }
    net.command(Command::SendChannel {
        session: opened[0],
        class: ChannelClass::Reliable,
        frame: Bytes::from_static(b"\xb0\x09"),
    });
    net.run(Duration::from_millis(200));
    for s in [a, b] {
        let got = &net.subs[s].channel_frames;
        assert!(
            got.iter().any(|f| f == &[0xb0, 1]),
            "reliable broadcast reaches every viewer"
        );
        assert!(
            got.iter().any(|f| f == &[0xb0, 2]),
            "lossy broadcast reaches every viewer"
        );
    }
    let direct = [a, b]
        .iter()
        .filter(|&&s| net.subs[s].channel_frames.iter().any(|f| f == b"\xb0\x09"))
        .count();
    assert_eq!(direct, 1, "a direct frame reaches exactly one viewer");
}

#[test]
fn simulcast_every_layer_accepted_and_highest_affordable_forwarded() {
    let mut net = Net::new(1);
    // Layers tagged 10 (q), 11 (h), 12 (f): ~0.1, ~0.4 and ~1.5 Mbit/s.
    net.publish_layers(1, vec![("q", 300), ("h", 1500), ("f", 6000)]);
    net.stage(vec![Some(1)]);
    let s = net.subscribe(1);
    net.run(Duration::from_secs(3));
    let v = net.video_of(s, 0);
    assert!(v.len() > 100, "video arrives: {}", v.len());
    for w in v.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0.wrapping_add(1),
            "one continuous stream across layer switches"
        );
    }
    // With the default 3 Mbit/s estimate and one tile, the last second is the full layer.
    let cutoff = net.now - Duration::from_secs(1);
    let recent: Vec<u8> = v
        .iter()
        .filter(|x| x.2 >= cutoff)
        .filter_map(|x| source_of(x.1))
        .collect();
    assert!(
        !recent.is_empty() && recent.iter().all(|&t| t == 12),
        "full layer forwarded: {recent:?}"
    );
}

#[test]
fn bridge_publisher_reaches_viewers_and_switches_like_a_webrtc_one() {
    let mut net = Net::new(1);
    net.publish(1);
    net.bridge(2);
    net.stage(vec![Some(2)]);
    let s = net.subscribe(1);
    net.run(Duration::from_millis(1500));
    assert!(net.events.iter().any(|e| matches!(
        e,
        SfuEvent::PublisherUp {
            participant: ParticipantId(2),
            ..
        }
    )));
    let v = net.video_of(s, 0);
    let first = v.first().expect("bridge video arrives");
    assert!(
        starts_keyframe(first.1),
        "a viewer starts on the bridge's keyframe (SPS/PPS STAP-A first): {:x?}",
        first.1
    );
    let ids: Vec<u8> = v.iter().filter_map(|x| source_of(x.1)).collect();
    assert!(
        ids.len() > 20 && ids.iter().all(|&i| i == 2),
        "frames are the bridge's: {ids:?}"
    );
    // Switch to the WebRTC publisher and back: one continuous stream.
    net.stage(vec![Some(1)]);
    net.run(Duration::from_secs(1));
    net.stage(vec![Some(2)]);
    net.run(Duration::from_millis(1500));
    let v = net.video_of(s, 0);
    for w in v.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0.wrapping_add(1),
            "contiguous sequence numbers across bridge/WebRTC switches"
        );
    }
    let ids: Vec<u8> = v.iter().filter_map(|x| source_of(x.1)).collect();
    assert!(
        ids.contains(&1) && ids.last() == Some(&2),
        "both sources were shown, the bridge last"
    );
    // Closing the bridge reports it down and its slot goes quiet.
    net.close(net.bridges[0].0).unwrap();
    net.bridges.clear();
    net.run(Duration::from_millis(100));
    assert!(net.events.iter().any(|e| matches!(
        e,
        SfuEvent::PublisherDown {
            participant: ParticipantId(2),
            ..
        }
    )));
    let n = net.video_of(s, 0).len();
    net.run(Duration::from_millis(500));
    assert_eq!(
        net.video_of(s, 0).len(),
        n,
        "nothing flows on the slot after the bridge closed"
    );
}

#[test]
fn publisher_health_is_reported_for_webrtc_and_bridge_publishers() {
    use venue_sfu::health::{B_FRAMES_WARNING, BridgeInfo, Protocol, PublisherHealth};
    let mut net = Net::new(1);
    let whip = net.publish(1);
    let bridge = net.bridge(2);
    net.stage(vec![Some(1)]);
    let s = net.subscribe(1);
    net.run(Duration::from_secs(3));
    let health = |net: &mut Net, session| -> Option<PublisherHealth> {
        let reply = net.ask(|request| Command::PublisherHealth { request, session });
        reply.into_health().unwrap().unwrap()
    };

    let h = health(&mut net, whip).expect("the WHIP publisher has health");
    assert_eq!(h.protocol, Protocol::Whip);
    assert_eq!(h.video.len(), 1, "{h:?}");
    let v = &h.video[0];
    assert_eq!(v.codec, "H.264");
    assert_eq!((v.width, v.height), (Some(640), Some(360)), "from the SPS");
    assert_eq!(v.profile_level_id.as_deref(), Some("42c01e"));
    assert!(
        (v.fps - 30.3).abs() < 1.0,
        "a 33 ms frame period: {}",
        v.fps
    );
    assert!(
        v.bitrate_bps > 500_000,
        "3 KB frames at 30 fps: {}",
        v.bitrate_bps
    );
    let a = h.audio.as_ref().expect("audio");
    assert_eq!(
        (a.codec.as_str(), a.channels, a.sample_rate_hz),
        ("Opus", 2, 48_000)
    );
    assert!(a.bitrate_bps > 0);
    assert_eq!(h.packet_loss, 0.0, "a lossless virtual network");
    assert!(!h.b_frames && h.warnings.is_empty(), "{h:?}");

    // The bridge: RTMP-style, one keyframe per 30 frames; B-frames told by the bridge.
    let h = health(&mut net, bridge).expect("the bridge has health");
    assert_eq!(h.protocol, Protocol::Rtmp);
    let v = &h.video[0];
    assert_eq!((v.width, v.height), (Some(640), Some(360)));
    assert!((v.fps - 30.3).abs() < 1.0, "{}", v.fps);
    let gop = v.keyframe_interval_s.expect("keyframe interval");
    assert!((gop - 1.0).abs() < 0.05, "GOP of 30 frames: {gop}");
    assert!(!h.b_frames);
    net.command(Command::BridgeInfo {
        session: bridge,
        info: BridgeInfo {
            protocol: Protocol::Rtmp,
            b_frames: true,
            source_audio: None,
        },
    });
    let h = health(&mut net, bridge).unwrap();
    assert!(h.b_frames);
    assert_eq!(h.warnings, vec![B_FRAMES_WARNING.to_string()]);

    // Not publishers: a subscriber, an unknown session.
    let sub_session = SessionId(0x1000 + s as u64 * 256);
    assert!(health(&mut net, sub_session).is_none());
    assert!(health(&mut net, SessionId(0xdead00)).is_none());
}

/// A stage tap (the compositor's reader) follows the stage like a viewer: slot 0's packets
/// depacketize into access units starting on a keyframe, a stage switch waits for the new
/// source's keyframe with sequence numbers continuous, slot 1 gets the second source, audio
/// arrives, and a closed tap gets nothing more.
#[test]
fn a_stage_tap_follows_the_stage_and_reassembles_pictures() {
    let mut net = Net::new(2);
    net.publish(1);
    net.bridge(2);
    net.stage(vec![Some(2), None]);
    const TAP: TapId = TapId(7);
    net.command(Command::OpenTap {
        tap: TAP,
        room: ROOM,
    });
    net.run(Duration::from_millis(1500));
    // What the tap put out since the last look (every tap output is for this tap).
    let drain = |net: &mut Net| -> Vec<TapPacket> {
        std::mem::take(&mut net.taps)
            .into_iter()
            .map(|(tap, p)| {
                assert_eq!(tap, TAP);
                p
            })
            .collect()
    };
    let got = drain(&mut net);
    let video0: Vec<_> = got
        .iter()
        .filter(|p| p.slot == 0 && p.kind == MediaKind::Video)
        .collect();
    let mut d = venue_sfu::tap::H264Depacketizer::new();
    let units: Vec<_> = video0
        .iter()
        .filter_map(|p| d.push(p.seq, p.rtp_time, p.marker, &p.payload))
        .collect();
    assert!(units.len() > 20, "pictures of slot 0: {}", units.len());
    assert!(units[0].keyframe, "the tap starts on a keyframe");
    assert!(
        units.iter().all(|u| u
            .nalus
            .iter()
            .any(|n| n.get(1) == Some(&2) && n[0] & 0x1f != 7)),
        "slot 0 shows the bridge (source 2)"
    );
    assert_eq!(d.dropped, 0);
    assert!(got.iter().all(|p| p.slot == 0), "slot 1 is empty");

    // Put the WebRTC publisher on slot 1 and swap slot 0 to it too.
    net.stage(vec![Some(1), Some(2)]);
    net.run(Duration::from_millis(1500));
    let got = drain(&mut net);
    let slot0: Vec<_> = got
        .iter()
        .filter(|p| p.slot == 0 && p.kind == MediaKind::Video)
        .collect();
    for w in slot0.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq + 1,
            "slot 0 continuous across the switch"
        );
    }
    let units: Vec<_> = slot0
        .iter()
        .filter_map(|p| d.push(p.seq, p.rtp_time, p.marker, &p.payload))
        .collect();
    let last = units.last().expect("slot 0 pictures after the switch");
    assert!(
        last.nalus.iter().any(|n| n.get(1) == Some(&1)),
        "slot 0 now shows source 1"
    );
    assert!(
        got.iter()
            .any(|p| p.slot == 1 && p.kind == MediaKind::Video),
        "slot 1 shows the bridge"
    );
    assert!(
        got.iter()
            .any(|p| p.slot == 0 && p.kind == MediaKind::Audio),
        "slot 0 audio from the WebRTC publisher"
    );

    net.command(Command::CloseTap { tap: TAP });
    net.run(Duration::from_millis(300));
    assert!(drain(&mut net).is_empty(), "a closed tap gets nothing");
}

/// The server's `a=candidate` lines of the latest answer.
fn answer_candidates(net: &Net) -> Vec<String> {
    net.last_answer
        .lines()
        .filter(|l| l.starts_with("a=candidate"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_subscriber_over_ice_tcp_only_gets_media_and_a_closed_connection_gets_nothing() {
    let mut net = Net::new(1);
    net.publish(1);
    net.stage(vec![Some(1)]);
    let s = net.subscribe_over(1, Protocol::Tcp);
    let cands = answer_candidates(&net);
    assert!(
        cands
            .iter()
            .any(|c| c.contains(" tcp ") && c.contains("10.0.0.1 5000 typ host tcptype passive")),
        "the answer has a passive TCP host candidate on the UDP port: {cands:?}"
    );
    assert!(
        cands.iter().any(|c| c.contains(" udp ")),
        "and the UDP one: {cands:?}"
    );
    net.run(Duration::from_secs(2));
    let addr = net.subs[s].addr;
    assert!(
        net.subs[s].rtc.is_connected(),
        "ICE and DTLS connected over TCP"
    );
    assert!(net.shard.has_tcp_peer(addr));
    let v = net.video_of(s, 0);
    assert!(v.len() > 50, "video arrives over TCP, got {}", v.len());
    assert!(
        v.iter().filter_map(|x| source_of(x.1)).all(|id| id == 1),
        "from source 1"
    );
    assert!(net.audio_of(s, 0) > 20, "audio arrives over TCP");
    let to_sub: Vec<Protocol> = net
        .sent
        .iter()
        .filter(|x| x.1 == addr)
        .map(|x| x.2)
        .collect();
    assert!(
        to_sub.iter().all(|p| *p == Protocol::Tcp),
        "everything to the TCP client went as TCP"
    );

    // The connection closes: the shell tells the core; nothing more goes to that address.
    net.cut.push(addr);
    net.shard
        .handle_input(net.now, shard::Input::TcpClosed { source: addr });
    let closed_at = net.now;
    assert!(!net.shard.has_tcp_peer(addr));
    net.run(Duration::from_millis(500));
    assert!(
        !net.sent.iter().any(|x| x.1 == addr && x.0 > closed_at),
        "nothing sent to a closed connection"
    );
    assert!(
        net.shard.stats().tcp_unrouted > 0,
        "media for the closed connection was dropped in the core"
    );
    // A frame from the closed address that is not STUN finds no session.
    let dropped = net.shard.stats().datagrams_dropped;
    net.shard.handle_input(
        net.now,
        shard::Input::TcpFrame {
            source: addr,
            destination_ip: Some(server().ip()),
            contents: &[0x80; 100],
        },
    );
    assert_eq!(net.shard.stats().datagrams_dropped, dropped + 1);
}

#[test]
fn without_ice_tcp_there_is_no_tcp_candidate_and_a_tcp_client_cannot_connect() {
    let config = SfuConfig {
        max_slots: 1,
        ice_tcp: false,
        ..SfuConfig::default()
    };
    let mut net = Net::with_config(config, server(), server().ip());
    let s = net.subscribe_over(1, Protocol::Tcp);
    let cands = answer_candidates(&net);
    assert!(
        !cands.is_empty() && cands.iter().all(|c| !c.contains(" tcp ")),
        "{cands:?}"
    );
    net.run(Duration::from_secs(2));
    assert!(!net.subs[s].rtc.is_connected());
    assert!(!net.shard.has_tcp_peer(net.subs[s].addr));
}

#[test]
fn one_to_one_nat_public_candidate_traffic_at_the_private_address() {
    // The server sits behind a 1:1 NAT: it advertises the public address (candidate_ips),
    // packets arrive at its private address. Both UDP and ICE-TCP sessions connect.
    let public: SocketAddr = "203.0.113.10:5000".parse().unwrap();
    let private: IpAddr = "10.0.0.1".parse().unwrap();
    let mut net = Net::with_addrs(1, public, private);
    net.publish(1);
    net.stage(vec![Some(1)]);
    let udp = net.subscribe(1);
    let cands = answer_candidates(&net);
    assert!(
        cands.iter().all(|c| c.contains("203.0.113.10 5000")),
        "only the public address is advertised: {cands:?}"
    );
    let tcp = net.subscribe_over(1, Protocol::Tcp);
    net.run(Duration::from_secs(2));
    for s in [udp, tcp] {
        assert!(net.subs[s].rtc.is_connected(), "subscriber {s} connected");
        let v = net.video_of(s, 0);
        assert!(v.len() > 50, "subscriber {s} gets video, {}", v.len());
    }
}
