-- The living room (issue 3): room settings, chat history, the sticker board, sticker sets and
-- moderation records. IPs are stored only as salted hashes (hex). Times are ms since the epoch.
CREATE TABLE room_settings (
    room_id          INTEGER PRIMARY KEY REFERENCES rooms(id) ON DELETE CASCADE,
    now_playing      TEXT    NOT NULL DEFAULT '',
    background_color TEXT    NOT NULL,
    mode             TEXT    NOT NULL,
    sticker_set      TEXT    NOT NULL,
    slow_mode_s      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE chat_messages (
    room_id      INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    id           INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    display_name TEXT    NOT NULL,
    text         TEXT    NOT NULL,
    sent_ms      INTEGER NOT NULL,
    starred      INTEGER NOT NULL DEFAULT 0,
    admin        INTEGER NOT NULL DEFAULT 0,
    deleted      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, id)
);

CREATE TABLE stickers (
    room_id      INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    id           INTEGER NOT NULL,
    sticker_id   TEXT    NOT NULL,
    x            REAL    NOT NULL,
    y            REAL    NOT NULL,
    rotation_deg REAL    NOT NULL,
    scale        REAL    NOT NULL,
    user_id      INTEGER NOT NULL,
    placed_ms    INTEGER NOT NULL,
    PRIMARY KEY (room_id, id)
);

CREATE TABLE sticker_sets (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    -- JSON array of {id, url, label}
    stickers TEXT NOT NULL
);

CREATE TABLE bans (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    ip_hash    TEXT    NOT NULL,
    until_ms   INTEGER NOT NULL,
    reason     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX bans_room ON bans(room_id);

CREATE TABLE mutes (
    room_id  INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    ip_hash  TEXT    NOT NULL,
    name_key TEXT    NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (room_id, ip_hash, name_key)
);

CREATE TABLE stars (
    room_id  INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    ip_hash  TEXT    NOT NULL,
    name_key TEXT    NOT NULL,
    PRIMARY KEY (room_id, ip_hash, name_key)
);
