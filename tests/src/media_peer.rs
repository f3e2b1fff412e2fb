//! A str0m peer that sends and receives real media on a loopback UDP socket, and an ffmpeg
//! stream played into it in real time: the client side of the relay tests (sfu's
//! origin → edge test, the gateway's three-node cluster test).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::Ssrc;
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::media_files::{H264Stream, OpusStream};

/// One received RTP packet.
pub struct Rx {
    pub at: Instant,
    /// The m-line it came on.
    pub mid: Mid,
    pub ssrc: Ssrc,
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// A str0m peer on a non-blocking loopback socket; each step drains every waiting datagram.
/// What it receives on video m-lines lands in `video`, a count of the rest in `audio`.
pub struct MediaPeer {
    pub rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    /// The m-line [`MediaPeer::send_video`] writes on.
    pub video_mid: Option<Mid>,
    /// The m-line [`MediaPeer::send_audio`] writes on.
    pub audio_mid: Option<Mid>,
    /// Video packets received, in arrival order.
    pub video: Vec<Rx>,
    /// Audio packets received.
    pub audio: usize,
    /// Keyframe requests (PLI/FIR) received.
    pub keyframe_requests: usize,
}

impl MediaPeer {
    /// A peer in frame mode (`rtp_mode = false`) or RTP mode on `127.0.0.1:<ephemeral>`.
    pub fn new(rtp_mode: bool) -> Result<MediaPeer> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let mut rtc = Rtc::builder().set_rtp_mode(rtp_mode).build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp")?);
        Ok(MediaPeer {
            rtc,
            socket,
            addr,
            video_mid: None,
            audio_mid: None,
            video: Vec::new(),
            audio: 0,
            keyframe_requests: 0,
        })
    }

    /// Handles every waiting datagram and the timers.
    pub fn step(&mut self) {
        let mut buf = [0u8; 2000];
        while let Ok((n, src)) = self.socket.recv_from(&mut buf) {
            if let Ok(r) = Receive::new(Protocol::Udp, src, self.addr, &buf[..n]) {
                let _ = self.rtc.handle_input(Input::Receive(Instant::now(), r));
            }
            self.drain();
        }
        let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(Event::RtpPacket(p))) => {
                    let mid = self
                        .rtc
                        .direct_api()
                        .stream_rx(&p.header.ssrc)
                        .map(|s| s.mid());
                    let video = mid.and_then(|m| self.rtc.media(m)).map(|m| m.kind())
                        == Some(MediaKind::Video);
                    if let (Some(mid), true) = (mid, video) {
                        self.video.push(Rx {
                            at: Instant::now(),
                            mid,
                            ssrc: p.header.ssrc,
                            seq: *p.seq_no,
                            payload: p.payload.to_vec(),
                        });
                    } else {
                        self.audio += 1;
                    }
                }
                Ok(Output::Event(Event::KeyframeRequest(_))) => self.keyframe_requests += 1,
                Ok(Output::Event(_)) => {}
                Ok(Output::Timeout(_)) | Err(_) => return,
            }
        }
    }

    /// Sends one Annex B access unit (frame mode) on the video m-line, optionally on a RID.
    /// Errors: no video m-line, no H.264 (packetization-mode 1) negotiated, str0m's.
    pub fn send_video(&mut self, rid: Option<&str>, ts_90k: u64, data: Vec<u8>) -> Result<()> {
        let mid = self.video_mid.context("no video m-line")?;
        let mut w = self
            .rtc
            .writer(mid)
            .context("no writer for the video m-line")?;
        if let Some(rid) = rid {
            w = w.rid(rid.into());
        }
        let pt = w
            .payload_params()
            .find(|p| {
                p.spec().codec == Codec::H264 && p.spec().format.packetization_mode == Some(1)
            })
            .context("no H.264 negotiated")?
            .pt();
        w.write(pt, Instant::now(), MediaTime::from_90khz(ts_90k), data)?;
        Ok(())
    }

    /// Sends one Opus packet on the audio m-line.
    /// Errors: no audio m-line or codec, str0m's.
    pub fn send_audio(&mut self, ts_48k: u64, data: Vec<u8>) -> Result<()> {
        let mid = self.audio_mid.context("no audio m-line")?;
        let w = self
            .rtc
            .writer(mid)
            .context("no writer for the audio m-line")?;
        let pt = w.payload_params().next().context("no audio codec")?.pt();
        w.write(
            pt,
            Instant::now(),
            MediaTime::new(ts_48k, Frequency::FORTY_EIGHT_KHZ),
            data,
        )?;
        Ok(())
    }
}

/// An ffmpeg stream played in real time: H.264 at 30 fps, Opus every 20 ms.
pub struct Playback {
    video: H264Stream,
    audio: OpusStream,
    start: Instant,
    next_video: usize,
    next_audio: usize,
}

impl Playback {
    /// Starts playing now.
    pub fn new(video: H264Stream, audio: OpusStream) -> Playback {
        Playback {
            video,
            audio,
            start: Instant::now(),
            next_video: 0,
            next_audio: 0,
        }
    }

    /// Sends what is due; true once everything was sent. Errors: see
    /// [`MediaPeer::send_video`].
    pub fn tick(&mut self, p: &mut MediaPeer) -> Result<bool> {
        let elapsed = self.start.elapsed();
        while self.next_video < self.video.frames.len()
            && elapsed >= Duration::from_millis(33 * self.next_video as u64)
        {
            let f = &self.video.frames[self.next_video];
            let mut data = Vec::new();
            if f.keyframe {
                for n in [&self.video.sps, &self.video.pps] {
                    data.extend_from_slice(&[0, 0, 0, 1]);
                    data.extend_from_slice(n);
                }
            }
            for n in &f.nalus {
                if f.keyframe && matches!(n.first().map(|b| b & 0x1f), Some(7 | 8)) {
                    continue;
                }
                data.extend_from_slice(&[0, 0, 0, 1]);
                data.extend_from_slice(n);
            }
            p.send_video(None, 3000 * self.next_video as u64, data)?;
            self.next_video += 1;
        }
        while self.next_audio < self.audio.packets.len()
            && elapsed >= Duration::from_millis(20 * self.next_audio as u64)
        {
            let data = self.audio.packets[self.next_audio].clone();
            p.send_audio(960 * self.next_audio as u64, data)?;
            self.next_audio += 1;
        }
        Ok(self.next_video >= self.video.frames.len()
            && self.next_audio >= self.audio.packets.len())
    }
}
