-- The schedule: events (a room's lineup, cut into slots) and bookings (an artist's window of
-- one or more contiguous slots). Times are Unix seconds, UTC.
-- PostgreSQL twin of migrations/sqlite/0005.
CREATE TABLE events (
    id            BIGSERIAL PRIMARY KEY,
    room_id       BIGINT    NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    title         TEXT      NOT NULL,
    start_at      BIGINT    NOT NULL,
    end_at        BIGINT    NOT NULL CHECK (end_at > start_at),
    slot_seconds  BIGINT    NOT NULL CHECK (slot_seconds > 0),
    public_signup BOOLEAN   NOT NULL DEFAULT FALSE,
    created_at    BIGINT    NOT NULL
);
CREATE INDEX events_room ON events(room_id, start_at);

CREATE TABLE bookings (
    id          BIGSERIAL PRIMARY KEY,
    event_id    BIGINT    NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    streamer_id BIGINT    NOT NULL REFERENCES streamers(id) ON DELETE CASCADE,
    start_at    BIGINT    NOT NULL,
    end_at      BIGINT    NOT NULL CHECK (end_at > start_at),
    artist_name TEXT      NOT NULL,
    description TEXT      NOT NULL DEFAULT '',
    location    TEXT      NOT NULL DEFAULT '',
    timezone    TEXT      NOT NULL,
    email       TEXT,
    created_at  BIGINT    NOT NULL
);
CREATE INDEX bookings_event ON bookings(event_id, start_at);
CREATE INDEX bookings_streamer ON bookings(streamer_id);

-- A streamer that was ever booked is slot-bound: its key works only in its booked windows
-- (plus grace). Streamers never booked (hosts) keep keys without a window.
ALTER TABLE streamers ADD COLUMN slot_bound BOOLEAN NOT NULL DEFAULT FALSE;
