-- A streamer's own sticker set (issue 3, "switch the sticker set per artist"): when an admin's
-- stage change puts this streamer on slot 0, the room's active set becomes this one. NULL = the
-- room keeps whatever set it has. A set id as in room_settings.sticker_set (not a foreign key:
-- the built-in `default` set has no row).
ALTER TABLE streamers ADD COLUMN sticker_set TEXT;
