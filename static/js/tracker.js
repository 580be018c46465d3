// The hand tracker in the page: MediaPipe Hands (npm @mediapipe/hands, the same hand models as the server's
// mediapipe wheel), served by the app from /vendor/hands/ with its WASM and models, never from a CDN. With it the
// camera's picture never leaves the device: the server is sent 21 landmarks a frame, in the server's convention
// (app/live/landmark_frames.py): fractions of the TRUE, unmirrored picture (the video element's own pixels; the
// preview is mirrored by CSS only) and MediaPipe's handedness label for that picture.

const BASE = "/vendor/hands/";
const LOAD_TIMEOUT_MS = 30000; // script, WASM and models (~12 MB), then the first frame's graph start
const TIMES_KEPT = 30; // frames whose tracking time gives the tracker's speed

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement("script"), { src, async: true });
    script.onload = resolve;
    script.onerror = () => reject(new Error(`${src} could not be loaded`));
    document.head.append(script);
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} took over ${ms / 1000} s`)), ms); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

export class PageTracker {
  static prepared = null; // prepare()'s promise

  // settings: the server's own (config.yaml's landmarks section, given to the page by the template), so both
  // trackers find the same hands.
  static async load(video, settings = {}) {
    return withTimeout((async () => {
      const tracker = new PageTracker(await PageTracker.prepare(settings));
      await tracker.read(video); // loads the models (the first frame configures the graph), and proves it runs here
      return tracker;
    })(), LOAD_TIMEOUT_MS, "loading the hand tracker");
  }

  // The script, the WASM and the graph, which need no frame: started before the camera opens (HandTracking.preload),
  // so the camera's first frames are tracked, not spent waiting for them. Once; load() awaits the same promise.
  static prepare({ modelComplexity = 1, minDetectionConfidence = 0.5, minTrackingConfidence = 0.5 } = {}) {
    PageTracker.prepared ??= (async () => {
      if (!window.Hands) await loadScript(`${BASE}hands.js`);
      const hands = new window.Hands({ locateFile: (file) => BASE + file });
      hands.setOptions({ maxNumHands: 1, modelComplexity, minDetectionConfidence, minTrackingConfidence, selfieMode: false, useCpuInference: true });
      await hands.initialize();
      return hands;
    })();
    return PageTracker.prepared;
  }

  constructor(hands) {
    this.hands = hands;
    this.latest = null;
    this.times = []; // ms each of the last frames took
    hands.onResults((results) => { this.latest = results; });
  }

  // One frame of the video (or a canvas) -> {landmarks: 21 x [x, y, z] | null, handedness, aspect}, the landmark
  // frame's fields.
  async read(video) {
    const started = performance.now();
    this.latest = null;
    await this.hands.send({ image: video });
    this.times.push(performance.now() - started);
    if (this.times.length > TIMES_KEPT) this.times.shift();
    const found = this.latest && this.latest.multiHandLandmarks && this.latest.multiHandLandmarks[0];
    return {
      landmarks: found ? found.map((p) => [p.x, p.y, p.z]) : null,
      handedness: found ? this.latest.multiHandedness[0].label : null,
      aspect: (video.videoWidth || video.width) / (video.videoHeight || video.height),
    };
  }

  // Frames a second this device can track (the median frame's time), once a few frames were tracked; else null.
  fps() {
    if (this.times.length < 5) return null;
    const sorted = [...this.times].sort((a, b) => a - b);
    return 1000 / Math.max(1, sorted[Math.floor(sorted.length / 2)]);
  }

  reset() {
    this.hands.reset(); // the next frame starts a new video (after a pause, the other mode)
  }
}
