//! Bridge publishers on a shard: sources that are not WebRTC peers (RTMP ingest) whose neutral
//! frames (`crate::bridge`) are packetized here into the same [`MediaPacket`]s a WHIP
//! publisher's RTP becomes, with their own sequence numbers and streamer health.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::MediaKind;

use tracing::info;

use super::media::{CodecKey, MediaPacket, clock_hz};
use super::messages::Output;
use crate::api::{ParticipantId, RoomId, SessionId, SfuEvent};
use crate::bridge::{BridgeMedia, MAX_RTP_PAYLOAD, Payload, packetize_h264, sps_profile_level_id};
use crate::forward::SourceKey;
use crate::health::{BridgeInfo, HealthMeter, Protocol as IngestProtocol, PublisherHealth};
use crate::keyframe::is_keyframe_start;

/// A publisher fed by a bridge instead of a WebRTC peer.
#[derive(Debug)]
pub struct Bridge {
    pub room: RoomId,
    pub participant: ParticipantId,
    /// Next extended sequence numbers of its video and audio streams.
    video_seq: u64,
    audio_seq: u64,
    /// H.264 `profile-level-id` from the latest SPS.
    profile: Option<u32>,
    /// Streamer health of this session.
    health: HealthMeter,
}

/// The shard's bridge publishers by session.
#[derive(Debug, Default)]
pub struct Bridges {
    by_session: HashMap<SessionId, Bridge>,
    payload_scratch: Vec<Payload>,
}

impl Bridges {
    /// A new bridge session of `participant` in `room` (health says RTMP until
    /// [`Bridges::set_info`] says otherwise); announces [`SfuEvent::PublisherUp`] on `out`.
    pub fn open(
        &mut self,
        session: SessionId,
        room: RoomId,
        participant: ParticipantId,
        out: &mut VecDeque<Output>,
    ) {
        info!(%session, participant = participant.0, "bridge publisher up");
        out.push_back(Output::Event(SfuEvent::PublisherUp {
            room,
            participant,
            session,
        }));
        self.by_session.insert(
            session,
            Bridge {
                room,
                participant,
                video_seq: 1,
                audio_seq: 1,
                profile: None,
                health: HealthMeter::new(IngestProtocol::Rtmp),
            },
        );
    }

    /// Ends a bridge session and announces [`SfuEvent::PublisherDown`] on `out`; false when
    /// there is no such session.
    pub fn close(&mut self, session: SessionId, why: &str, out: &mut VecDeque<Output>) -> bool {
        let Some(b) = self.by_session.remove(&session) else {
            return false;
        };
        info!(%session, participant = b.participant.0, why, "bridge publisher down");
        out.push_back(Output::Event(SfuEvent::PublisherDown {
            room: b.room,
            participant: b.participant,
            session,
        }));
        true
    }

    /// The sessions of `participant`.
    pub fn sessions_of(&self, participant: ParticipantId) -> Vec<SessionId> {
        self.by_session
            .iter()
            .filter(|(_, b)| b.participant == participant)
            .map(|(s, _)| *s)
            .collect()
    }

    /// What the bridge knows about its source, for health.
    pub fn set_info(&mut self, session: SessionId, info: BridgeInfo) {
        if let Some(b) = self.by_session.get_mut(&session) {
            b.health.set_info(info);
        }
    }

    /// A bridge session's health at `now`.
    pub fn health(&self, session: SessionId, now: Instant) -> Option<PublisherHealth> {
        self.by_session
            .get(&session)
            .map(|b| b.health.snapshot(now))
    }

    /// Packetizes one frame of `session` (RFC 6184 for H.264, as is for Opus) into `packets`
    /// and feeds health. Nothing for an unknown session.
    pub fn packetize(
        &mut self,
        session: SessionId,
        media: BridgeMedia,
        now: Instant,
        packets: &mut Vec<MediaPacket>,
    ) {
        let Some(b) = self.by_session.get_mut(&session) else {
            return;
        };
        let source = SourceKey {
            participant: b.participant,
            rid: None,
        };
        let epoch = session.0;
        let first = packets.len();
        match media {
            BridgeMedia::Video(frame) => {
                if let Some(p) = frame
                    .parameter_sets
                    .iter()
                    .find_map(|n| sps_profile_level_id(n))
                {
                    b.profile = Some(p);
                }
                let payloads = &mut self.payload_scratch;
                packetize_h264(&frame, MAX_RTP_PAYLOAD, payloads);
                for p in payloads.drain(..) {
                    let switch_point = is_keyframe_start(Codec::H264, &p.data);
                    packets.push(MediaPacket {
                        room: b.room,
                        source,
                        kind: MediaKind::Video,
                        codec: CodecKey {
                            codec: Codec::H264,
                            profile: b.profile,
                        },
                        seq: b.video_seq,
                        rtp_time: frame.pts_90k as u32,
                        marker: p.marker,
                        switch_point,
                        payload: Arc::from(p.data),
                        arrival: now,
                        epoch,
                    });
                    b.video_seq += 1;
                }
            }
            BridgeMedia::Audio(frame) => {
                packets.push(MediaPacket {
                    room: b.room,
                    source,
                    kind: MediaKind::Audio,
                    codec: CodecKey {
                        codec: Codec::Opus,
                        profile: None,
                    },
                    seq: b.audio_seq,
                    rtp_time: frame.ts_48k as u32,
                    marker: false,
                    switch_point: true,
                    payload: Arc::from(frame.data.as_ref()),
                    arrival: now,
                    epoch,
                });
                b.audio_seq += 1;
            }
        }
        for pkt in packets.iter().skip(first) {
            b.health.observe(now, &pkt.observed(clock_hz(pkt.kind)));
        }
    }
}
