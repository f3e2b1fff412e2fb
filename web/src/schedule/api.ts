// Admin console, schedule card: the shapes of the schedule API (documented at the top of
// gateway/src/api/schedule.rs).

/** `booking` of the admin API (private fields included). Times RFC 3339; `start`/`end` UTC. */
export interface BookingJson {
  id: number;
  artist_name: string;
  description: string;
  location: string;
  timezone: string;
  start: string;
  end: string;
  /** The window in the artist's time zone, with that zone's offset. */
  local_start: string;
  local_end: string;
  live: boolean;
  streamer_id?: number;
  email?: string | null;
}

export interface SlotJson {
  start: string;
  end: string;
  booking: BookingJson | null;
}

export interface EventJson {
  id: number;
  title: string;
  start: string;
  end: string;
  slot_minutes: number;
  public_signup: boolean;
  slots: SlotJson[];
}

export interface CreatedBookingJson {
  booking: BookingJson;
  stream_key: string | null;
  whip_url: string;
  /** Full RTMP URL with the key, where the server gives it. */
  /** `rtmp://host:port/live/<key>` with a new key; null when RTMP ingest is off. */
  rtmp_url?: string | null;
  merged: boolean;
}

export interface StreamerJson {
  id: number | string;
  name: string;
  live: boolean;
}
