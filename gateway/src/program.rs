//! The LL-HLS program's lifecycle (issue 5): a room's program runs only while someone watches
//! it. A supervisor task looks twice a second at when each room's playlist was last requested
//! ([`crate::api::hls::HlsPrograms::last_watched`]); a room watched within [`IDLE`] gets a
//! program — a stage tap in the SFU (`SfuHandle::open_tap`) feeding the compositor on its own
//! thread (`venue_sfu::egress::program::ProgramRunner`), whose output goes into the room's
//! LL-HLS packager (started with the compositor's format on the first picture) — and the look
//! of the stage (layout, artists, title) follows the room. A room nobody watched for [`IDLE`]
//! has its program stopped and its playlist gone (404 until someone asks again, which starts
//! it anew within about a second; the first request waits for it).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use venue_sfu::RoomId;
use venue_sfu::egress::compositor::{CompositorConfig, ProgramOutput};
use venue_sfu::egress::hls::HlsConfig;
use venue_sfu::egress::program::{ProgramRunner, StageLook};

use crate::AppState;
use crate::state::RoomView;

/// A program whose playlist nobody requested for this long is stopped.
pub const IDLE: Duration = Duration::from_secs(30);
/// How often the supervisor looks.
const TICK: Duration = Duration::from_millis(500);

struct Running {
    runner: ProgramRunner,
    look: StageLook,
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
pub fn spawn_supervisor(app: AppState) {
    tokio::spawn(async move {
        let mut running: HashMap<String, Running> = HashMap::new();
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
                let watched = app
                    .hls
                    .last_watched(&name)
                    .is_some_and(|t| t.elapsed() < IDLE);
                let alive = running.get(&name).is_some_and(|r| r.runner.is_running());
                if !watched || !alive {
                    if let Some(old) = running.remove(&name) {
                        // Joining the thread takes up to one compositor step: off the runtime.
                        let _ = tokio::task::spawn_blocking(move || drop(old)).await;
                        app.hls.stop(&name);
                        tracing::info!(room = %name, "LL-HLS program stopped (nobody watching)");
                    }
                }
                if !watched {
                    continue;
                }
                let view = match app.state.view(&name).await {
                    Ok(Some(v)) => v,
                    _ => continue,
                };
                let look = look_of(&view);
                if let Some(r) = running.get_mut(&name) {
                    if r.look != look {
                        r.runner.set_look(look.clone());
                        r.look = look;
                    }
                    continue;
                }
                match start(&app, &name, &view, look.clone()).await {
                    Ok(runner) => {
                        tracing::info!(room = %name, "LL-HLS program starting");
                        running.insert(name, Running { runner, look });
                    }
                    Err(e) => tracing::warn!(room = %name, error = %e, "cannot start the program"),
                }
            }
        }
    });
}

async fn start(
    app: &AppState,
    name: &str,
    view: &RoomView,
    look: StageLook,
) -> Result<ProgramRunner, String> {
    let tap = app
        .sfu
        .open_tap(RoomId(view.id as u64))
        .await
        .map_err(|e| format!("stage tap: {e}"))?;
    let config = CompositorConfig {
        title: view.title.clone(),
        ..CompositorConfig::default()
    };
    let hls_config = HlsConfig {
        segment_target: config.keyframe_interval,
        ..HlsConfig::default()
    };
    let hls = app.hls.clone();
    let room = name.to_owned();
    let mut program = None;
    let sink = Box::new(
        move |out: ProgramOutput, format: Option<&venue_sfu::egress::ProgramFormat>| {
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
