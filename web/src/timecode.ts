// A wall-clock timecode drawn into video frames, for glass-to-glass latency measurement
// (tests/e2e/latency.mjs decodes it from the viewer's <video>).
//
// Layout on a WIDTH×HEIGHT canvas: three rows of 16 blocks, each BLOCK_W×BLOCK_H pixels, from
// the top-left corner. With t = Date.now() mod 2^32 (ms): row 0 holds bits 0–15 of t, row 1
// bits 16–31, row 2 the complement of row 0 (a check). Bit i of a row is block i from the
// left; white = 1, black = 0. Below the blocks the time is printed in digits for people.
// The decoder scales these coordinates to the received frame size.

export const WIDTH = 1280;
export const HEIGHT = 720;
export const COLS = 16;
export const BLOCK_W = WIDTH / COLS; // 80 px
export const BLOCK_H = 100;

export function drawTimecode(ctx: CanvasRenderingContext2D, now: number, frame: number): void {
  const t = now >>> 0;
  ctx.fillStyle = "#202430";
  ctx.fillRect(0, 0, WIDTH, HEIGHT);
  const rows = [t & 0xffff, (t >>> 16) & 0xffff, ~t & 0xffff];
  rows.forEach((bits, r) => {
    for (let i = 0; i < COLS; i++) {
      ctx.fillStyle = (bits >>> i) & 1 ? "#ffffff" : "#000000";
      ctx.fillRect(i * BLOCK_W, r * BLOCK_H, BLOCK_W, BLOCK_H);
    }
  });
  ctx.fillStyle = "#e8eaf0";
  ctx.font = "bold 120px ui-monospace, monospace";
  ctx.textBaseline = "middle";
  ctx.fillText(String(now % 100000).padStart(5, "0"), 60, 3 * BLOCK_H + 150);
  ctx.font = "32px system-ui, sans-serif";
  ctx.fillText(`Venue timecode · frame ${frame}`, 60, HEIGHT - 60);
  // Something that moves, so every frame differs visibly.
  ctx.fillStyle = "#7c8cff";
  ctx.fillRect(((frame * 8) % (WIDTH - 40)), HEIGHT - 20, 40, 20);
}

/** A 30 fps video track of the timecode, redrawn every few ms so each captured frame is fresh. */
export function timecodeTrack(): { stream: MediaStream; stop: () => void } {
  const canvas = document.createElement("canvas");
  canvas.width = WIDTH;
  canvas.height = HEIGHT;
  const ctx = canvas.getContext("2d", { alpha: false });
  if (!ctx) throw new Error("no 2d canvas");
  let frame = 0;
  const draw = () => drawTimecode(ctx, Date.now(), frame++);
  draw();
  const timer = setInterval(draw, 8);
  const stream = canvas.captureStream(30);
  return {
    stream,
    stop: () => {
      clearInterval(timer);
      stream.getTracks().forEach((t) => t.stop());
    },
  };
}
