//! Public room information: `GET /api/rooms/{room}` → `{name, title, layout, max_slots,
//! slots: [{index, streamer_id|null, name|null, live}], viewer_count}` (slots always
//! `max_slots` long).

use axum::Json;
use axum::extract::{Path, State};

use crate::AppState;
use crate::error::ApiError;
use crate::state::RoomView;

/// `GET /api/rooms/{room}`.
pub async fn get(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    app.state
        .view(&name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no room {name:?}")))
}
