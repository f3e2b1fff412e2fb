//! The state actor's cluster side (issue 11 item 4): claiming the tracks of streamers live on
//! this node, reading who owns the other stage streamers, and opening relays from their
//! origins ([`crate::cluster::tracks`]). Everything here runs in spawned tasks that report
//! back to the actor as commands, so a slow Redis or origin never stalls the actor.
//! Single-node mode has no [`ClusterLink`] and none of this runs.

use std::sync::Arc;

use tokio::sync::mpsc;
use venue_sfu::SfuHandle;

use super::actor::Command;
use crate::bus::{Announcement, Bus};
use crate::cluster::tracks::Tracks;
use crate::ids::{RoomId, StreamerId};

/// The state actor's link to the cluster.
#[derive(Debug, Clone)]
pub struct ClusterLink {
    tracks: Tracks,
    /// The actor's own command queue (weak: it must not keep the actor alive).
    actor: mpsc::WeakSender<Command>,
}

impl ClusterLink {
    pub(super) fn new(tracks: Tracks, actor: mpsc::WeakSender<Command>) -> ClusterLink {
        ClusterLink { tracks, actor }
    }

    fn send(&self, command: Command) {
        if let Some(tx) = self.actor.upgrade() {
            // A full queue drops a report; the next refresh repeats it.
            let _ = tx.try_send(command);
        }
    }

    /// Streamer `streamer` of `room` went live here (or offline here): claim (release) its
    /// tracks, then tell every node to re-read the room, in that order, so they find the new
    /// owner when they look.
    pub fn live_changed(&self, bus: Arc<dyn Bus>, room: RoomId, streamer: StreamerId, live: bool) {
        let tracks = self.tracks.clone();
        tokio::spawn(async move {
            let result = if live {
                tracks.claim(&[streamer]).await
            } else {
                tracks.release(&[streamer]).await
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, streamer = streamer.0, live, "could not write the tracks' owner (retried by the refresh)");
            }
            bus.publish(Announcement::RoomChanged { room });
        });
    }

    /// Refreshes the claims on `live_here` (the streamers live on this node) and reads the
    /// owners of `rooms`' stage streamers; the owners come back as `Command::Owners`.
    pub fn refresh(&self, live_here: Vec<StreamerId>, rooms: Vec<(RoomId, Vec<StreamerId>)>) {
        let link = self.clone();
        tokio::spawn(async move {
            if let Err(e) = link.tracks.claim(&live_here).await {
                tracing::warn!(error = %e, "could not refresh this node's track claims");
            }
            link.look_up(rooms).await;
        });
    }

    /// Reads the owners of `rooms`' stage streamers (this node's own claims count as none).
    pub fn look_up_later(&self, rooms: Vec<(RoomId, Vec<StreamerId>)>) {
        let link = self.clone();
        tokio::spawn(async move { link.look_up(rooms).await });
    }

    async fn look_up(&self, rooms: Vec<(RoomId, Vec<StreamerId>)>) {
        for (room, streamers) in rooms {
            let owners = match self.tracks.owners(&streamers).await {
                Ok(owners) => owners,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the owners of stage streamers");
                    return;
                }
            };
            let me = self.tracks.node().as_str();
            let owners = streamers
                .into_iter()
                .zip(owners)
                .map(|(s, o)| (s, o.filter(|o| o != me)))
                .collect();
            self.send(Command::Owners { room, owners });
        }
    }

    /// Opens the relay of `room` from node `origin`: this node's SFU offers, the origin
    /// answers over `/internal/relay`; reported back as `Command::RelayOpened` or
    /// `Command::RelayFailed`.
    pub fn open_relay(&self, sfu: SfuHandle, room: RoomId, origin: String) {
        let link = self.clone();
        tokio::spawn(async move {
            let command = match open(&link.tracks, &sfu, room, &origin).await {
                Ok((session, participants)) => {
                    tracing::info!(room = room.0, %origin, %session, "relay from the origin opened");
                    Command::RelayOpened {
                        room,
                        origin,
                        session,
                        participants,
                    }
                }
                Err(e) => {
                    tracing::warn!(room = room.0, %origin, error = %e, "could not open a relay (retrying)");
                    Command::RelayFailed { room, origin }
                }
            };
            link.send(command);
        });
    }
}

async fn open(
    tracks: &Tracks,
    sfu: &SfuHandle,
    room: RoomId,
    origin: &str,
) -> anyhow::Result<(venue_sfu::SessionId, Vec<venue_sfu::ParticipantId>)> {
    let offer = sfu.open_relay(room.into()).await?;
    let answer = match tracks.request_relay(origin, room, offer.offer_sdp).await {
        Ok(answer) => answer,
        Err(e) => {
            let _ = sfu.close(offer.session).await;
            return Err(e.into());
        }
    };
    if let Err(e) = sfu.relay_answer(offer.session, &answer).await {
        let _ = sfu.close(offer.session).await;
        return Err(e.into());
    }
    Ok((offer.session, offer.participants))
}
