-- A streamer's own sticker set: when an admin's stage change puts this streamer on slot 0, the
-- room's active set becomes this one. NULL = the room keeps whatever set it has.
-- PostgreSQL twin of migrations/sqlite/0004.
ALTER TABLE streamers ADD COLUMN sticker_set TEXT;
