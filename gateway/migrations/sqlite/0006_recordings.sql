-- Recordings of artists' sets (issue 5 item 4): one fMP4 file per set in data_dir/recordings.
-- Times are Unix milliseconds, UTC. `end_ms` is NULL while the set is being recorded (or when
-- the server stopped mid-set; the next start finishes such rows from the file on disk).
-- Streamer and booking ids are kept as plain numbers (no foreign keys): a recording outlives
-- the streamer or booking it came from.
CREATE TABLE recordings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id     INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    streamer_id INTEGER NOT NULL,
    booking_id  INTEGER,
    artist      TEXT    NOT NULL,
    file        TEXT    NOT NULL UNIQUE,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    bytes       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX recordings_room ON recordings(room_id, start_ms);
