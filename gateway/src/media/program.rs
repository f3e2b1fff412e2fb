//! The LL-HLS program's lifecycle (issue 5): a room's program runs only while someone watches
//! it. A supervisor task looks twice a second at when each room's playlist was last requested
//! ([`HlsPrograms::last_watched`]); a room watched within [`IDLE`] gets a
//! program — a stage tap in the SFU (`SfuHandle::open_tap`) feeding the compositor on its own
//! thread (`venue_sfu::egress::program::ProgramRunner`), whose output goes into the room's
//! LL-HLS packager (started with the compositor's format on the first picture) — and the look
//! of the stage (layout, artists, title) follows the room. A room nobody watched for [`IDLE`]
//! has its program stopped and its playlist gone (404 until someone asks again, which starts
//! it anew within about a second; the first request waits for it).
//!
//! Cluster mode (issue 11 item 8): only the room's **program node** composes it
//! ([`ProgramNodes::composes`], a lease per room, [`crate::media::program_node`]); the other
//! nodes forward `/hls/{room}/...` to it and compose nothing for that room. When it stops
//! being the program node its program stops (and its recording ends) at the next tick; the
//! node that took over starts its own at its next tick when watched or recording (until media
//! relays between nodes are wired, a program holds only what was published on its node).
//!
//! Recording (issue 5 item 4, [`crate::media::recording`]): the program also runs while a set is
//! being recorded — `[recording] enabled`, this node the room's program node (so each set is
//! recorded once cluster-wide), and a live streamer on stage slot 0 — so the
//! start/stop condition is *watched or recording wanted*. The sink feeds the recorder
//! (`RecorderFeed`, never blocking) always and the LL-HLS packager only while watched. Each
//! tick the room's [`SetTracker`](crate::media::recording::SetTracker) says when a set starts (a file
//! is opened and attached to the feed) or ends (its writer is finished off the loop).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use venue_sfu::SfuHandle;
use venue_sfu::egress::compositor::{CompositorConfig, ProgramOutput};
use venue_sfu::egress::hls::HlsConfig;
use venue_sfu::egress::program::{ProgramRunner, StageLook};

use super::recording::{FeedControl, RecorderFeed, Recordings, RoomSets, Seat, SetChange};
use crate::media::hls_programs::HlsPrograms;
use crate::media::program_node::ProgramNodes;
use crate::rooms::{RoomView, StateHandle};
use crate::store::Store;

/// A program whose playlist nobody requested for this long is stopped.
pub const IDLE: Duration = Duration::from_secs(30);
/// How often the supervisor looks.
const TICK: Duration = Duration::from_millis(500);

/// The handles the program supervisor uses (built where it is spawned). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProgramDeps {
    /// Lists the rooms each tick.
    pub store: Store,
    /// Each room's view (stage, layout, title, who is live).
    pub state: StateHandle,
    /// Stage taps (`SfuHandle::open_tap`).
    pub sfu: SfuHandle,
    /// The LL-HLS programs: when each room was last watched, and the packagers fed.
    pub hls: HlsPrograms,
    /// The recordings of sets.
    pub recordings: Recordings,
    /// Whether this node composes (and records) each room: single-node always; cluster
    /// mode the room's program node only ([`ProgramNodes::composes`], one lease per room).
    pub program: ProgramNodes,
}

struct Running {
    runner: ProgramRunner,
    look: StageLook,
    /// Whether the sink feeds the LL-HLS packager (someone watches).
    hls_on: Arc<AtomicBool>,
    /// Commands to the sink's recorder feed.
    feed: std::sync::mpsc::Sender<FeedControl>,
}

fn seat_of(view: &RoomView) -> Option<Seat> {
    let slot = view.slots.first()?;
    Some(Seat {
        streamer_id: slot.streamer_id?,
        name: slot.name.clone().unwrap_or_default(),
        live: slot.live,
    })
}

fn look_of(view: &RoomView) -> StageLook {
    StageLook {
        layout: view.layout,
        names: view
            .slots
            .iter()
            .map(|s| s.streamer_id.and(s.name.clone()))
            .collect(),
        title: view.title.clone(),
    }
}

/// Starts the supervisor task (see the module docs).
/// `settings`: `[hls]` — `compose` says whether watchers get a program (recordings always
/// do); the program's size, frame rate and bitrate.
pub fn spawn_supervisor(app: ProgramDeps, settings: crate::config::HlsConfig) {
    let compose = settings.compose;
    tokio::spawn(async move {
        let mut running: HashMap<String, Running> = HashMap::new();
        let mut sets: HashMap<String, RoomSets> = HashMap::new();
        let mut composing: HashMap<String, bool> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let rooms = match app.store.rooms().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "program supervisor: listing rooms failed");
                    continue;
                }
            };
            for room in rooms {
                let name = room.name;
                // The one decision of who composes the room (module program_node).
                let composes = app.program.composes(&name);
                let watched = compose
                    && composes
                    && app
                        .hls
                        .last_watched(&name)
                        .is_some_and(|t| t.elapsed() < IDLE);
                let view = match app.state.view(&name).await {
                    Ok(Some(v)) => Some(v),
                    _ => None,
                };
                let seat = view.as_ref().and_then(seat_of);
                let enabled = app.recordings.enabled() && composes;
                let record = enabled && seat.as_ref().is_some_and(|s| s.live);
                let wanted = watched || record;
                // Cluster mode: a program composed here needs the stage's media from the
                // other nodes (relays) as a viewer would.
                if composing.insert(name.clone(), wanted) != Some(wanted) {
                    let _ = app.state.set_program(room.id, wanted).await;
                }
                // Sets: end the recording of a set that ended (or whose writer stopped by
                // itself: full disk, program gone — the set goes on unrecorded).
                let room_sets = sets.entry(name.clone()).or_default();
                let changes = match &view {
                    Some(_) => room_sets.tracker.observe(enabled, seat.as_ref()),
                    None => Vec::new(),
                };
                let ended = changes.iter().any(|c| matches!(c, SetChange::End { .. }))
                    || room_sets.active.as_ref().is_some_and(|a| a.writer_ended());
                if ended && let Some(rec) = room_sets.active.take() {
                    if let Some(r) = running.get(&name) {
                        let _ = r.feed.send(FeedControl::Detach);
                    }
                    let recordings = app.recordings.clone();
                    tokio::spawn(async move { recordings.finish(rec, SystemTime::now()).await });
                }
                let alive = running.get(&name).is_some_and(|r| r.runner.is_running());
                if (!wanted || !alive)
                    && let Some(old) = running.remove(&name)
                {
                    // Joining the thread takes up to one compositor step: off the runtime.
                    let _ = tokio::task::spawn_blocking(move || drop(old)).await;
                    app.hls.stop(&name);
                    tracing::info!(room = %name, "program stopped (nobody watching, no set recorded)");
                }
                if !wanted {
                    continue;
                }
                let Some(view) = view else { continue };
                let look = look_of(&view);
                if let Some(r) = running.get_mut(&name) {
                    if r.look != look {
                        r.runner.set_look(look.clone());
                        r.look = look;
                    }
                    if r.hls_on.swap(watched, Ordering::Relaxed) && !watched {
                        app.hls.stop(&name);
                    }
                } else if app.hls.get(&name).is_some() {
                    // A program this supervisor did not start (fed by another source, or a
                    // test) is left alone.
                    continue;
                } else {
                    let hls_on = Arc::new(AtomicBool::new(watched));
                    let (feed, feed_rx) = super::recording::feed_channel();
                    match start(
                        &app,
                        &settings,
                        &name,
                        &view,
                        look.clone(),
                        hls_on.clone(),
                        feed_rx,
                    )
                    .await
                    {
                        Ok(runner) => {
                            tracing::info!(room = %name, "program starting");
                            running.insert(
                                name.clone(),
                                Running {
                                    runner,
                                    look,
                                    hls_on,
                                    feed,
                                },
                            );
                        }
                        Err(e) => {
                            tracing::warn!(room = %name, error = %e, "cannot start the program")
                        }
                    }
                }
                // A set that started is recorded into a new file fed by the program.
                for change in changes {
                    let SetChange::Start {
                        streamer_id,
                        name: artist,
                    } = change
                    else {
                        continue;
                    };
                    let Some(r) = running.get(&name) else {
                        continue;
                    };
                    match app
                        .recordings
                        .start(view.id, &name, streamer_id, &artist, SystemTime::now())
                        .await
                    {
                        Ok((rec, tx)) => {
                            let _ = r.feed.send(FeedControl::Attach(tx));
                            room_sets.active = Some(rec);
                        }
                        Err(e) => {
                            tracing::warn!(room = %name, error = %e, "cannot start a recording")
                        }
                    }
                }
            }
        }
    });
}

#[allow(clippy::too_many_arguments)]
async fn start(
    app: &ProgramDeps,
    settings: &crate::config::HlsConfig,
    name: &str,
    view: &RoomView,
    look: StageLook,
    hls_on: Arc<AtomicBool>,
    feed: std::sync::mpsc::Receiver<FeedControl>,
) -> Result<ProgramRunner, String> {
    let tap = app
        .sfu
        .open_tap(view.id.into())
        .await
        .map_err(|e| format!("stage tap: {e}"))?;
    let config = CompositorConfig {
        title: view.title.clone(),
        width: settings.width,
        height: settings.height,
        fps: settings.fps,
        video_bitrate_bps: settings.video_bitrate_kbps.saturating_mul(1000),
        ..CompositorConfig::default()
    };
    let hls_config = HlsConfig {
        segment_target: config.keyframe_interval,
        ..HlsConfig::default()
    };
    let hls = app.hls.clone();
    let room = name.to_owned();
    let mut program = None;
    let mut recorder = RecorderFeed::new(feed, app.recordings.stats().clone());
    let sink = Box::new(
        move |out: ProgramOutput, format: Option<&venue_sfu::egress::ProgramFormat>| {
            recorder.feed(&out, format);
            if !hls_on.load(Ordering::Relaxed) {
                program = None;
                return;
            }
            if program.is_none() {
                let Some(format) = format else { return };
                match hls.start(&room, hls_config.clone(), format.clone()) {
                    Ok(p) => program = Some(p),
                    Err(e) => {
                        tracing::warn!(room = %room, error = %e, "LL-HLS packager refused the program");
                        return;
                    }
                }
            }
            let Some(p) = &program else { return };
            match out {
                ProgramOutput::Video(v) => p.push_video(v, SystemTime::now()),
                ProgramOutput::Audio(a) => p.push_audio(a),
            }
        },
    );
    tokio::task::spawn_blocking(move || ProgramRunner::spawn(tap, config, look, sink))
        .await
        .map_err(|e| format!("program thread: {e}"))?
        .map_err(|e| e.to_string())
}
