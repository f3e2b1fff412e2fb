-- Recordings of artists' sets: one fMP4 file per set in data_dir/recordings. Times are Unix
-- milliseconds, UTC. `end_ms` is NULL while the set is being recorded. Streamer and booking ids
-- are plain numbers (no foreign keys): a recording outlives its streamer or booking.
-- PostgreSQL twin of migrations/sqlite/0006.
CREATE TABLE recordings (
    id          BIGSERIAL PRIMARY KEY,
    room_id     BIGINT    NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    streamer_id BIGINT    NOT NULL,
    booking_id  BIGINT,
    artist      TEXT      NOT NULL,
    file        TEXT      NOT NULL UNIQUE,
    start_ms    BIGINT    NOT NULL,
    end_ms      BIGINT,
    duration_ms BIGINT    NOT NULL DEFAULT 0,
    bytes       BIGINT    NOT NULL DEFAULT 0
);
CREATE INDEX recordings_room ON recordings(room_id, start_ms);
