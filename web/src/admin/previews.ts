// Admin console: the small live preview on each live streamer's card (admin WHEP: one video +
// one audio of one streamer, `POST …/streamers/{id}/whep`), retried 5 s after a failure.
import { deleteSession, errorMessage, h, postOffer, rtcConfiguration, type SdpSession } from "../common";
import type { AdminHost, Id } from "./host";

interface Preview {
  pc: RTCPeerConnection;
  session: SdpSession | null;
  video: HTMLVideoElement;
}

/** The previews by streamer id; each one fills the thumb element it was started in. */
export class Previews {
  /** Open previews by streamer id (exposed as `window.venue.previews` for tests). */
  readonly open = new Map<string, Preview>();
  /** The previews' RTCConfiguration (TURN servers from the server), refreshed every 10 minutes. */
  private rtcConfig: RTCConfiguration = { bundlePolicy: "max-bundle" };
  private readonly retryAt = new Map<string, number>();

  constructor(private readonly host: AdminHost) {
    const refreshRtcConfig = () =>
      void rtcConfiguration().then((c) => {
        this.rtcConfig = c;
      });
    refreshRtcConfig();
    setInterval(refreshRtcConfig, 600_000);
    window.addEventListener("pagehide", () => {
      for (const p of this.open.values()) deleteSession(p.session);
    });
  }

  /** Starts the preview of streamer `id` in `thumb` unless it runs or failed < 5 s ago. */
  start(id: Id, thumb: HTMLElement) {
    const key = String(id);
    const previews = this.open;
    if (previews.has(key)) return;
    if ((this.retryAt.get(key) ?? 0) > Date.now()) return;
    const pc = new RTCPeerConnection(this.rtcConfig);
    const v = pc.addTransceiver("video", { direction: "recvonly" });
    const a = pc.addTransceiver("audio", { direction: "recvonly" });
    const video = h("video", { autoplay: true, playsinline: true, "data-preview": key });
    video.muted = true;
    video.srcObject = new MediaStream([v.receiver.track, a.receiver.track]);
    const p: Preview = { pc, session: null, video };
    previews.set(key, p);
    thumb.replaceChildren(video);
    video.play().catch(() => {});
    const fail = (why: string) => {
      if (previews.get(key) !== p) return;
      this.stop(key, thumb, why);
      this.retryAt.set(key, Date.now() + 5000);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") fail("preview failed");
    };
    void (async () => {
      try {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        const s = await postOffer(
          `${this.host.roomPath()}/streamers/${encodeURIComponent(key)}/whep`,
          pc.localDescription?.sdp ?? "",
          { Authorization: `Bearer ${this.host.token()}` },
        );
        if (previews.get(key) !== p) {
          deleteSession(s);
          return;
        }
        p.session = s;
        await pc.setRemoteDescription({ type: "answer", sdp: s.answer });
      } catch (e) {
        fail(`preview unavailable (${errorMessage(e)})`);
      }
    })();
  }

  /** Stops streamer `key`'s preview (WHEP DELETE) and puts `text` in its `thumb`. */
  stop(key: string, thumb?: HTMLElement, text = "offline") {
    const p = this.open.get(key);
    if (p) {
      this.open.delete(key);
      deleteSession(p.session);
      p.pc.onconnectionstatechange = null;
      p.pc.close();
      p.video.srcObject = null;
    }
    if (thumb && (p || thumb.textContent !== text)) {
      thumb.replaceChildren(text);
    }
  }

  /** Stops every preview; `thumbOf` finds each one's thumb element, if still shown. */
  stopAll(thumbOf: (key: string) => HTMLElement | undefined) {
    for (const key of [...this.open.keys()]) this.stop(key, thumbOf(key));
  }
}
