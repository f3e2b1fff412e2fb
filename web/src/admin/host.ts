// Admin console: what admin.ts hands to the console's parts (admin/*.ts; the schedule and
// recordings cards take a subset of the same shape).

/** A streamer id as the API gives it. */
export type Id = number | string;

/** The signed-in console, as its parts see it. */
export interface AdminHost {
  /** An admin API call with the Bearer token; JSON in and out; a 401 signs out. */
  api<T>(method: string, path: string, body?: unknown): Promise<T>;
  /** `/api/admin/rooms/{room}` of the room being edited. */
  roomPath(): string;
  /** The admin token (Bearer). */
  token(): string;
  /** Bumps on room change and sign-out: a response for an older epoch is dropped. */
  epoch(): number;
  /** A short notice at the bottom (`err`: an error, shown longer). */
  toast(text: string, err?: boolean): void;
}
