-- Images of uploaded sticker sets: one row per sticker picture, served at
-- /stickers/custom/{set_id}/{sticker_id}. At most 256 KiB each (checked by the API).
-- PostgreSQL twin of migrations/sqlite/0003.
CREATE TABLE sticker_images (
    set_id       TEXT   NOT NULL,
    sticker_id   TEXT   NOT NULL,
    content_type TEXT   NOT NULL,
    data         BYTEA  NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (set_id, sticker_id)
);
