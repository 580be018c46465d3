// Where the hand is found, and so what leaves the device: "this device" runs the tracker in the page (static/js/
// tracker.js) and sends only 21 landmarks a frame; "server" sends camera pictures (JPEG) for the server's tracker.
// The page takes this device when its tracker loads and keeps up, else the server; a button in the status line
// switches, and ?landmarks=browser or ?landmarks=server forces one. The server reads both alike.
import { captureFrame } from "./camera.js";
import { PageTracker } from "./tracker.js";

const MIN_FPS = 5; // chosen by the page: a tracker slower than this (a letter held 4 frames would take 0.8 s) hands the camera to the server
const LABELS = { browser: "this device", server: "server", loading: "starting…" };

export class HandTracking {
  constructor({ video, canvas, captureWidth, settings, setMessage }) {
    Object.assign(this, { video, canvas, captureWidth, settings, setMessage });
    const asked = new URLSearchParams(location.search).get("landmarks");
    this.forced = ["browser", "server"].includes(asked) ? asked : null;
    this.mode = "loading"; // no frame is sent while the page's tracker loads: no picture leaves before it is chosen
    this.tracker = null;
    this.status = document.getElementById("status-tracking");
    this.button = document.getElementById("switch-tracking");
    this.button.addEventListener("click", () => this.use(this.mode === "browser" ? "server" : "browser"));
    this.show();
  }

  // Before the camera starts: this device's tracker loads meanwhile (unless the server is forced). A failure is
  // the load's to report, in use().
  preload() {
    if (this.forced !== "server") PageTracker.prepare(this.settings).catch(() => {});
  }

  // After the camera started.
  start() {
    return this.use(this.forced === "server" ? "server" : "browser");
  }

  async use(mode) {
    if (mode === "browser") {
      this.mode = "loading";
      this.show();
      try {
        this.tracker = this.tracker || await PageTracker.load(this.video, this.settings);
        this.tracker.reset();
      } catch (err) {
        this.setMessage("tracking", `This device could not run the hand tracker (${err.message}): the server reads the camera instead.`, "info");
        mode = "server";
      }
    }
    this.mode = mode;
    if (mode === "browser") this.setMessage("tracking", null);
    this.show();
  }

  // The next frame's fields for `frame` ({image} or {landmarks, handedness, aspect}); null while loading.
  async capture() {
    if (this.mode === "server") return { image: await captureFrame(this.video, this.canvas, this.captureWidth) };
    if (this.mode !== "browser") return null;
    let frame;
    try {
      frame = await this.tracker.read(this.video);
    } catch (err) { // the tracker broke (out of memory, a lost WebGL context): the server reads from here on
      this.setMessage("tracking", `This device's hand tracker stopped (${err.message || err}): the server reads the camera instead.`, "info");
      this.use("server");
      return null;
    }
    const fps = this.tracker.fps();
    if (!this.forced && this.tracker.times.length >= 20 && fps < MIN_FPS) {
      this.setMessage("tracking", `This device tracks the hand at ${fps.toFixed(1)} frames a second, too slow to read signs: the server reads the camera instead.`, "info");
      this.use("server");
    }
    return frame;
  }

  show() {
    const fps = this.mode === "browser" && this.tracker ? this.tracker.fps() : null;
    this.status.textContent = LABELS[this.mode] + (fps ? ` (${Math.round(fps)} fps)` : "");
    document.body.dataset.handTracking = this.mode;
    if (fps) document.body.dataset.trackerFps = fps.toFixed(1);
    this.button.textContent = this.mode === "browser" ? "track on the server" : "track on this device";
    this.button.disabled = this.mode === "loading";
  }
}
