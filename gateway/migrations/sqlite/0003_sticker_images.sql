-- Images of uploaded sticker sets (issue 3): one row per sticker picture, served at
-- /stickers/custom/{set_id}/{sticker_id}. At most 256 KiB each (checked by the API).
CREATE TABLE sticker_images (
    set_id       TEXT    NOT NULL,
    sticker_id   TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    data         BLOB    NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (set_id, sticker_id)
);
