-- Rooms, streamers (stream keys stored as SHA-256 hashes only) and stage slots.
CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    title       TEXT    NOT NULL,
    layout      INTEGER NOT NULL DEFAULT 1 CHECK (layout BETWEEN 1 AND 9),
    created_at  INTEGER NOT NULL
);

CREATE TABLE streamers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id     INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    key_hash    TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);
CREATE INDEX streamers_room ON streamers(room_id);

CREATE TABLE stage_slots (
    room_id     INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    slot_index  INTEGER NOT NULL CHECK (slot_index BETWEEN 0 AND 8),
    streamer_id INTEGER REFERENCES streamers(id) ON DELETE SET NULL,
    PRIMARY KEY (room_id, slot_index)
);
