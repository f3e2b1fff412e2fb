-- Rooms, streamers (stream keys stored as SHA-256 hashes only) and stage slots.
-- PostgreSQL twin of migrations/sqlite/0001 (same version, same tables and columns).
CREATE TABLE rooms (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT      NOT NULL UNIQUE,
    title       TEXT      NOT NULL,
    layout      BIGINT    NOT NULL DEFAULT 1 CHECK (layout BETWEEN 1 AND 9),
    created_at  BIGINT    NOT NULL
);

CREATE TABLE streamers (
    id          BIGSERIAL PRIMARY KEY,
    room_id     BIGINT    NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    name        TEXT      NOT NULL,
    key_hash    TEXT      NOT NULL UNIQUE,
    created_at  BIGINT    NOT NULL
);
CREATE INDEX streamers_room ON streamers(room_id);

CREATE TABLE stage_slots (
    room_id     BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    slot_index  BIGINT NOT NULL CHECK (slot_index BETWEEN 0 AND 8),
    streamer_id BIGINT REFERENCES streamers(id) ON DELETE SET NULL,
    PRIMARY KEY (room_id, slot_index)
);
