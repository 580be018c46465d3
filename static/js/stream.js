// Frame pacing with backpressure: at most MAX_IN_FLIGHT frames wait for a reply at any time. A frame is
// captured only when it can be sent, so a slow server lowers the frame rate, never the freshness.
// Every frame gets a `result` or an `error` with its seq; a frame unanswered after IN_FLIGHT_TIMEOUT_MS
// is forgotten, so a lost reply cannot stall the stream.

const MAX_IN_FLIGHT = 2;
const IN_FLIGHT_TIMEOUT_MS = 2000;
const STATS_WINDOW_MS = 2000;

export class FrameStream {
  constructor({ fps, capture, send }) {
    this.interval = 1000 / fps;
    this.capture = capture; // () => Promise<frame fields (a picture or landmarks)|null>
    this.send = send; // (seq, fields) => void
    this.seq = 0;
    this.inFlight = new Map(); // seq -> time sent
    this.done = []; // [time answered, round trip ms]
    this.timer = null;
    this.capturing = false;
    this.paused = false;
  }

  start() {
    if (!this.timer) this.timer = setInterval(() => this.tick(), this.interval);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.inFlight.clear();
  }

  async tick() {
    const now = performance.now();
    for (const [seq, sent] of this.inFlight) {
      if (now - sent > IN_FLIGHT_TIMEOUT_MS) this.inFlight.delete(seq);
    }
    if (this.paused || this.capturing || this.inFlight.size >= MAX_IN_FLIGHT) return;
    this.capturing = true;
    try {
      const bytes = await this.capture();
      if (bytes && !this.paused) {
        const seq = ++this.seq;
        this.inFlight.set(seq, performance.now());
        this.send(seq, bytes);
      }
    } finally {
      this.capturing = false;
    }
  }

  // Stop sending, and resolve once every frame sent is answered or forgotten (before the socket closes: a reply
  // arriving after the close is reported by the browser as an error). resume() sends again.
  async drain() {
    this.paused = true;
    const until = performance.now() + IN_FLIGHT_TIMEOUT_MS;
    while ((this.capturing || this.inFlight.size) && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  resume() {
    this.paused = false;
  }

  // A reply (result or error) for `seq` arrived.
  answered(seq) {
    const sent = this.inFlight.get(seq);
    if (sent === undefined) return;
    this.inFlight.delete(seq);
    const now = performance.now();
    this.done.push([now, now - sent]);
    while (this.done.length && now - this.done[0][0] > STATS_WINDOW_MS) this.done.shift();
  }

  // Replies a second and the median round trip over the last few seconds.
  stats() {
    const now = performance.now();
    const recent = this.done.filter(([t]) => now - t <= STATS_WINDOW_MS);
    const rtts = recent.map(([, rtt]) => rtt).sort((a, b) => a - b);
    return {
      fps: recent.length / (STATS_WINDOW_MS / 1000),
      rtt: rtts.length ? rtts[Math.floor(rtts.length / 2)] : null,
    };
  }
}
