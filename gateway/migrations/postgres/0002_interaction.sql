-- The living room: room settings, chat history, the sticker board, sticker sets and
-- moderation records. IPs are stored only as salted hashes (hex). Times are ms since the epoch.
-- PostgreSQL twin of migrations/sqlite/0002.
CREATE TABLE room_settings (
    room_id          BIGINT  PRIMARY KEY REFERENCES rooms(id) ON DELETE CASCADE,
    now_playing      TEXT    NOT NULL DEFAULT '',
    background_color TEXT    NOT NULL,
    mode             TEXT    NOT NULL,
    sticker_set      TEXT    NOT NULL,
    slow_mode_s      BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE chat_messages (
    room_id      BIGINT  NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    id           BIGINT  NOT NULL,
    user_id      BIGINT  NOT NULL,
    display_name TEXT    NOT NULL,
    text         TEXT    NOT NULL,
    sent_ms      BIGINT  NOT NULL,
    starred      BOOLEAN NOT NULL DEFAULT FALSE,
    admin        BOOLEAN NOT NULL DEFAULT FALSE,
    deleted      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (room_id, id)
);

CREATE TABLE stickers (
    room_id      BIGINT           NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    id           BIGINT           NOT NULL,
    sticker_id   TEXT             NOT NULL,
    x            DOUBLE PRECISION NOT NULL,
    y            DOUBLE PRECISION NOT NULL,
    rotation_deg DOUBLE PRECISION NOT NULL,
    scale        DOUBLE PRECISION NOT NULL,
    user_id      BIGINT           NOT NULL,
    placed_ms    BIGINT           NOT NULL,
    PRIMARY KEY (room_id, id)
);

CREATE TABLE sticker_sets (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    -- JSON array of {id, url, label}
    stickers TEXT NOT NULL
);

CREATE TABLE bans (
    id         BIGSERIAL PRIMARY KEY,
    room_id    BIGINT    NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    ip_hash    TEXT      NOT NULL,
    until_ms   BIGINT    NOT NULL,
    reason     TEXT      NOT NULL DEFAULT ''
);
CREATE INDEX bans_room ON bans(room_id);

CREATE TABLE mutes (
    room_id  BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    ip_hash  TEXT   NOT NULL,
    name_key TEXT   NOT NULL,
    until_ms BIGINT NOT NULL,
    PRIMARY KEY (room_id, ip_hash, name_key)
);

CREATE TABLE stars (
    room_id  BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    ip_hash  TEXT   NOT NULL,
    name_key TEXT   NOT NULL,
    PRIMARY KEY (room_id, ip_hash, name_key)
);
