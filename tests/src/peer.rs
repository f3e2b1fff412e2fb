//! A str0m peer on its own loopback UDP socket, driven step by step: the client side of the
//! real-socket integration tests (sfu's smoke test, the gateway's live and data-channel tests).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A str0m `Rtc` with a host candidate on `127.0.0.1:<ephemeral>`.
pub struct LoopbackPeer {
    /// The peer; add media/channels to it before making the offer.
    pub rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
}

impl LoopbackPeer {
    /// A peer in frame mode (`rtp_mode = false`) or RTP mode. Each [`LoopbackPeer::step`] waits
    /// at most 1 ms for a datagram.
    pub fn new(rtp_mode: bool) -> Result<LoopbackPeer> {
        let socket = UdpSocket::bind("127.0.0.1:0").context("binding a loopback UDP socket")?;
        socket.set_read_timeout(Some(Duration::from_millis(1)))?;
        let addr = socket.local_addr()?;
        let mut rtc = Rtc::builder().set_rtp_mode(rtp_mode).build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp")?);
        Ok(LoopbackPeer { rtc, socket, addr })
    }

    /// Reads at most one datagram, drives the peer's timers, sends what it wants sent and hands
    /// every event to `on_event` (with the peer, to answer on a channel or writer).
    pub fn step(&mut self, mut on_event: impl FnMut(&mut Rtc, Event)) -> Result<()> {
        let mut buf = [0u8; 2000];
        if let Ok((n, src)) = self.socket.recv_from(&mut buf) {
            let data = buf.get(..n).unwrap_or_default();
            if let Ok(r) = Receive::new(Protocol::Udp, src, self.addr, data) {
                self.rtc.handle_input(Input::Receive(Instant::now(), r))?;
            }
        }
        self.rtc.handle_input(Input::Timeout(Instant::now()))?;
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(e) => on_event(&mut self.rtc, e),
                Output::Timeout(_) => return Ok(()),
            }
        }
    }
}
