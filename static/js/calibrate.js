// Calibration on the live page: walk through the signable classes (a reference drawing beside the preview, a
// countdown, ~1.5 s of frames with a hand per class, redo and skip), then adapt on the server and read with the
// personal model, unless it mixes two of the user's signs: then it says which, and offers to redo them.
// The server's protocol: `calibrate` {label[, end]}, `adapt`, `adapt_progress`, `adapted`, `forget`, connect auth
// {personal_key}. The key is a capability: it stays in this browser's localStorage and goes only to this server.

import { errorText } from "./errors.js";
import { forgetLearned, keptMisreadings, keptWords } from "./words.js";

const $ = (id) => document.getElementById(id);
const STORE = { key: "sign2sound.personalKey", shared: "sign2sound.useShared", offered: "sign2sound.calibrationOffered" };
const CODES = new Set(["bad_label", "too_few_samples", "adapt_failed", "adapt_busy", "rate_limited", "store_full",
  "unknown_key", "personal_unavailable"]);
const NO_HAND_MS = 1500; // capturing without a hand this long: say so
const MIN_TAKE = 3; // frames with a hand a take needs, whatever the frame rate
const CALIBRATABLE = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZ", "space", "del"]; // `calibrate`'s classes, in order

const root = $("calibration");
const settings = root.dataset;
const classes = settings.classes.split(",").filter(Boolean);
const countdownMs = Number(settings.countdownS) * 1000;
const captureMs = Number(settings.captureS) * 1000;
const sendFps = Number(document.body.dataset.sendFps) || 15;
const target = Math.max(MIN_TAKE, Math.round((captureMs / 1000) * sendFps)); // frames a full take holds

let socket = null;
let reconnect = null; // live.js: a new connection once the frames in flight are answered
let poses = null; // static/calibration/poses.json (ml.poses): per class the median pose, J and Z their motion
let step = -1; // index into classes while calibrating
let take = null; // the capture in progress: {label, samples, first, lastHand, timer, done}
let onSignal = null; // the current wait's wake-up (results, errors, buttons)
let confused = []; // the classes the last adaptation could not tell apart, to redo

// ---------------------------------------------------------------------------------------- connection

// Socket.IO's auth, asked again on every (re)connect: the key unless the user chose the shared model.
export function personalAuth(callback) {
  const key = localStorage.getItem(STORE.key);
  callback(key && !localStorage.getItem(STORE.shared) ? { personal_key: key } : {});
}

// Calibration's errors carry no frame seq (a frame's own rate_limited does).
export function isCalibrationError(error) {
  return CODES.has(error.code) && (error.seq === null || error.seq === undefined);
}

export function initCalibration(liveSocket, { setMessage, reconnect: reconnectLive }) {
  socket = liveSocket;
  reconnect = reconnectLive;
  socket.on("result", onResult);
  socket.on("adapt_progress", ({ step: done, steps }) => {
    $("calibration-progress").value = steps ? done / steps : 0;
    say(`Adapting to your hand… ${Math.round((100 * done) / (steps || 1))}%`);
  });
  socket.on("adapted", onAdapted);
  socket.on("error", (error) => {
    if (!isCalibrationError(error)) return;
    if (error.code === "unknown_key" || error.code === "personal_unavailable") {
      // unavailable: the cluster's shared store is down for now, the key stays good for the next connect
      if (error.code === "unknown_key") localStorage.removeItem(STORE.key);
      showControls();
      setMessage("personal", errorText(error), "info");
      setTimeout(() => setMessage("personal", null), 8000);
    } else {
      say(errorText(error), true);
      finish({ title: "Calibration stopped" });
    }
  });
  $("calibrate").addEventListener("click", () => start(classes));
  $("calibration-offer-yes").addEventListener("click", () => start(classes));
  $("calibration-offer-no").addEventListener("click", () => {
    localStorage.setItem(STORE.offered, "1");
    showControls();
  });
  $("calibration-redo").addEventListener("click", () => signal("redo"));
  $("calibration-skip").addEventListener("click", () => signal("skip"));
  $("calibration-cancel").addEventListener("click", () => signal("cancel"));
  $("calibration-redo-confused").addEventListener("click", () => start(confused));
  $("calibration-use-mine").addEventListener("click", () => {
    localStorage.removeItem(STORE.shared);
    reconnect(); // the new connection's auth carries the key
    close();
  });
  $("calibration-close").addEventListener("click", close);
  $("use-shared").addEventListener("click", toggleShared);
  $("forget-me").addEventListener("click", forget);
  showControls();
  loadPoses();
}

// "Forget me" shows while this browser keeps anything of the user: a personal key, or what the decoder learned.
export function showControls() {
  const hasKey = Boolean(localStorage.getItem(STORE.key));
  $("calibration-offer").hidden = Boolean(localStorage.getItem(STORE.offered) || hasKey);
  $("calibrate").hidden = !$("calibration-offer").hidden; // one Calibrate button at a time
  $("practice").hidden = $("calibrate").hidden;
  $("use-shared").hidden = !hasKey;
  $("forget-me").hidden = !hasKey && !keptWords().length && !keptMisreadings();
  $("use-shared").textContent = localStorage.getItem(STORE.shared) ? "Use my model" : "Use the shared model";
}

function onResult(result) {
  $("status-model").textContent = result.model === "personal" ? "yours" : result.model;
  document.body.dataset.model = result.model; // read by tests and styles: "personal" once yours reads
  if (!take || take.done || !result.calibration || result.calibration.label !== take.label) return;
  const now = performance.now();
  const samples = result.calibration.samples;
  if (samples > take.samples) {
    take.first = take.first ?? now;
    take.lastHand = now;
    take.samples = samples;
  }
  $("calibration-progress").value = Math.min(1, take.samples / target);
  const full = take.samples >= target || result.calibration.error
    || (take.first !== null && now - take.first >= captureMs && take.samples >= MIN_TAKE);
  if (full) signal("captured");
  else if (now - take.lastHand > NO_HAND_MS) say("No hand seen: hold your hand in the camera's view, or Skip.", true);
  else say(`Hold ${take.label}…`);
}

// ---------------------------------------------------------------------------------------- the guided flow

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function signal(what) {
  if (onSignal) onSignal(what);
}

// Resolves with the first signal ("captured", "redo", "skip", "cancel"), or "timeout" after `ms`.
function waitFor(ms = null) {
  return new Promise((resolve) => {
    const timer = ms === null ? null : setTimeout(() => resolve("timeout"), ms);
    onSignal = (what) => {
      clearTimeout(timer);
      onSignal = null;
      resolve(what);
    };
  });
}

// The status is a live region: a text set again (every result says "Hold A…") would be read out again.
function say(text, isError = false) {
  if ($("calibration-status").textContent !== text) $("calibration-status").textContent = text;
  $("calibration-status").classList.toggle("error", isError);
}

// The panel's phases: "steps" (a class: drawing, Redo / Skip / Cancel), "adapting", "done" (Close, and the
// offers after a calibration that mixed signs).
function showPhase(phase, title = "Calibration done") {
  $("calibration-panel").dataset.phase = phase;
  $("calibration-where").hidden = phase !== "steps";
  $("calibration-countdown").hidden = phase !== "steps";
  $("calibration-progress").hidden = phase === "done";
  $("calibration-figure").hidden = phase !== "steps";
  $("calibration-steps").hidden = phase !== "steps";
  $("calibration-after").hidden = phase !== "done";
  $("calibration-countdown").textContent = "";
  if (phase === "adapting") $("calibration-class").textContent = "Adapting to your hand…";
  if (phase === "done") $("calibration-class").textContent = title;
}

async function start(list) {
  if (step >= 0 || !list.length) return; // already calibrating
  localStorage.setItem(STORE.offered, "1");
  showControls();
  document.body.classList.add("calibrating"); // the panel takes the reading's place, beside the preview
  $("calibration-panel").hidden = false;
  $("calibrate").disabled = true;
  showPhase("steps");
  document.querySelector(".stage").scrollIntoView({ block: "start" }); // the preview and the drawing together
  $("calibration-heading").focus({ preventScroll: true }); // the button pressed is gone: focus the panel
  $("calibration-total").textContent = list.length;
  socket.emit("calibrate", { label: null }); // calibrating from the first countdown: nothing signed is typed
  for (step = 0; step < list.length; step += 1) {
    const outcome = await calibrateClass(list[step]);
    if (outcome === "cancel") {
      socket.emit("calibrate", { label: null, end: true }); // the speller reads again
      return finish({ hide: true });
    }
  }
  adapt();
}

// One class: drawing, countdown, capture. Redo starts the class again (a new take replaces the old one).
async function calibrateClass(label) {
  $("calibration-index").textContent = step + 1;
  $("calibration-class").textContent = label;
  drawPose(label);
  for (;;) {
    $("calibration-progress").value = 0;
    say(`Get ready to sign ${label}.`);
    let outcome = null;
    for (let left = Math.ceil(countdownMs / 1000); left > 0 && !outcome; left -= 1) {
      $("calibration-countdown").textContent = left;
      const waited = await waitFor(Math.min(1000, countdownMs));
      if (waited !== "timeout") outcome = waited;
    }
    $("calibration-countdown").textContent = outcome ? "" : "Now!";
    if (!outcome) {
      take = { label, samples: 0, first: null, lastHand: performance.now(), done: false };
      socket.emit("calibrate", { label });
      outcome = await waitFor();
      take.done = true;
      socket.emit("calibrate", { label: null });
    }
    $("calibration-countdown").textContent = "";
    if (outcome === "redo") continue;
    if (outcome === "captured") say(`${label}: got it.`);
    return outcome;
  }
}

function adapt() {
  showPhase("adapting");
  $("calibration-progress").value = 0;
  say("Adapting to your hand…");
  socket.emit("adapt", (ack) => {
    if (ack && ack.queued > 0) say(`Adapting to your hand… waiting for ${ack.queued} other adaptation(s) first.`);
  });
}

function onAdapted(result) {
  forgetLearned({ words: false }); // the new model's misreadings are learned afresh (the server's are cleared)
  localStorage.setItem(STORE.key, result.key);
  const pct = (x) => `${Math.round(x * 100)}%`;
  const figures = `on your held-back frames the shared model read ${pct(result.before)}, yours reads ${pct(result.after)}`;
  const pairs = Object.entries(result.confused || {});
  confused = CALIBRATABLE.filter((c) => pairs.some((pair) => pair.includes(c))); // a confusion may name `nothing`
  if (result.source !== "calibration") { // practice.js, learn_words.js say it; the calibration panel stays as it is
    if (result.switched === false) localStorage.setItem(STORE.shared, "1");
    else localStorage.removeItem(STORE.shared);
    showControls();
    return;
  }
  if (result.switched === false) {
    // The server kept the shared model: so does this browser, until the user chooses theirs.
    localStorage.setItem(STORE.shared, "1");
    say(`${pairs.map(([a, b], i) => `${i ? "your" : "Your"} ${a} reads as ${b}`).join("; ")}: to the model these signs look alike, `
      + `so the shared model stays. Redo them, or use yours anyway (${figures}).`, true);
    $("calibration-redo-confused").textContent = `Redo ${confused.join(", ")}`;
  } else {
    localStorage.removeItem(STORE.shared);
    const stays = result.kept === "current" ? " Your earlier model stays: the new one read your new signs less well." : "";
    say(`Done in ${Math.round(result.seconds)} s: ${figures}.${stays} Reading with yours now.`);
    $("status-model").textContent = "yours";
  }
  $("calibration-redo-confused").hidden = result.switched !== false || !confused.length;
  $("calibration-use-mine").hidden = result.switched !== false;
  showControls();
  finish();
}

// The flow is over (adapted, failed or cancelled): the panel stays with its outcome and a Close, or hides.
function finish({ hide = false, title } = {}) {
  step = -1;
  take = null;
  onSignal = null;
  $("calibrate").disabled = false;
  showPhase("done", title);
  if (hide) close();
  else $("calibration-close").focus({ preventScroll: true });
}

function close() {
  $("calibration-panel").hidden = true;
  document.body.classList.remove("calibrating");
}

function toggleShared() {
  if (localStorage.getItem(STORE.shared)) localStorage.removeItem(STORE.shared);
  else localStorage.setItem(STORE.shared, "1");
  showControls();
  reconnect(); // the new connection's auth carries the key, or not
}

function forget() {
  socket.emit("forget", (ack) => {
    localStorage.removeItem(STORE.key);
    localStorage.removeItem(STORE.shared);
    forgetLearned();
    if (ack) $("status-model").textContent = ack.model;
    close();
    showControls();
  });
}

// ---------------------------------------------------------------------------------------- reference drawings

async function loadPoses() {
  try {
    const response = await fetch(settings.poses, { cache: "force-cache" });
    if (response.ok) poses = await response.json();
  } catch (err) {
    poses = null; // the drawing degrades to the class name
  }
}

const PALM = [0, 1, 5, 9, 13, 17];
const FINGERS = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [17, 18, 19, 20]]; // thumb first
const FINGER_WIDTH = 0.075; // in the file's units (the largest pose spans 0.8)
const SKIN = { fill: "#f3d1b0", thumb: "#e8a87c", edge: "#7a4a2a", motion: "#c5221f" };

// {points: 21 x [x, y], depth: 21 z (smaller: nearer), caption, path: the motion's points, or null}; null when the
// file lacks the class.
function poseOf(label) {
  const entry = poses && poses.classes && poses.classes[label];
  if (!entry || !Array.isArray(entry.landmarks) || entry.landmarks.length !== 21) return null;
  const points = entry.landmarks;
  const [x0, y0] = points[entry.traced_by ?? 0]; // the motion is relative to where this landmark starts
  const path = Array.isArray(entry.motion) ? entry.motion.map(([dx, dy]) => [x0 + dx, y0 + dy]) : null;
  const depth = Array.isArray(entry.depth) && entry.depth.length === 21 ? entry.depth : points.map(() => 0);
  return { points, depth, path, caption: entry.caption || "" };
}

function drawPose(label) {
  const canvas = $("calibration-pose");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const pose = poseOf(label);
  $("calibration-caption").textContent = pose ? pose.caption : "";
  canvas.setAttribute("aria-label", `Reference hand for ${label}${pose && pose.caption ? `: ${pose.caption}` : ""}`);
  if (!pose) { // no drawing: the class name, large
    ctx.fillStyle = "#202124";
    ctx.font = `bold ${label.length > 1 ? 48 : 120}px sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(label, canvas.width / 2, canvas.height / 2);
    return;
  }
  const all = [...pose.points, ...(pose.path || [])];
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [x0, y0] = [Math.min(...xs), Math.min(...ys)];
  const span = Math.max(Math.max(...xs) - x0, Math.max(...ys) - y0) || 1;
  const pad = canvas.width * 0.1;
  const scale = (canvas.width - 2 * pad) / span;
  const left = (canvas.width - (Math.max(...xs) - x0) * scale) / 2;
  const top = (canvas.height - (Math.max(...ys) - y0) * scale) / 2;
  // Mirrored, centred: the user sees their hand in the selfie-mirrored preview, so the drawing matches that.
  const at = ([x, y]) => [canvas.width - (left + (x - x0) * scale), top + (y - y0) * scale];
  const pts = pose.points.map(at);
  // Every pose in the file has one scale (hands keep their size): a finger is as wide in each.
  const width = Math.max(6, FINGER_WIDTH * scale);
  // A picture of a hand: the palm and each finger bone filled and outlined, painted far to near, so that a finger
  // folded in front of the palm (A, M, S) is seen in front of it, and the thumb in its own colour.
  const parts = [{ kind: "palm", z: mean(PALM.map((i) => pose.depth[i])) }];
  FINGERS.forEach((finger, f) => finger.slice(1).forEach((b, k) => { // each bone, from the joint before it
    const a = finger[k];
    parts.push({ kind: "bone", a, b, thumb: f === 0, z: (pose.depth[a] + pose.depth[b]) / 2 });
  }));
  parts.sort((p, q) => q.z - p.z);
  ctx.lineJoin = "round";
  ctx.lineCap = "round";
  for (const part of parts) {
    if (part.kind === "palm") {
      ctx.beginPath();
      PALM.forEach((i, n) => (n ? ctx.lineTo(...pts[i]) : ctx.moveTo(...pts[i])));
      ctx.closePath();
      ctx.lineWidth = width; // the palm's edge as round as the fingers
      ctx.strokeStyle = SKIN.edge;
      ctx.stroke();
      ctx.lineWidth = width - 4;
      ctx.strokeStyle = SKIN.fill;
      ctx.stroke();
      ctx.fillStyle = SKIN.fill;
      ctx.fill();
    } else {
      const w = part.thumb ? width * 1.1 : width;
      for (const [lineWidth, colour] of [[w, SKIN.edge], [w - 4, part.thumb ? SKIN.thumb : SKIN.fill]]) {
        ctx.beginPath();
        ctx.moveTo(...pts[part.a]);
        ctx.lineTo(...pts[part.b]);
        ctx.lineWidth = lineWidth;
        ctx.strokeStyle = colour;
        ctx.stroke();
      }
    }
  }
  if (pose.path && pose.path.length > 1) drawMotion(ctx, pose.path.map(at));
}

const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;

// J and Z: the motion as a dashed line from a dot to an arrowhead, over the hand.
function drawMotion(ctx, path) {
  ctx.strokeStyle = SKIN.motion;
  ctx.fillStyle = SKIN.motion;
  ctx.lineWidth = 3;
  ctx.setLineDash([7, 5]);
  ctx.beginPath();
  ctx.moveTo(...path[0]);
  for (const p of path.slice(1)) ctx.lineTo(...p);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.beginPath();
  ctx.arc(...path[0], 4, 0, 2 * Math.PI);
  ctx.fill();
  const [x, y] = path[path.length - 1];
  const [px, py] = path[path.length - 2];
  const angle = Math.atan2(y - py, x - px);
  const size = 12;
  ctx.beginPath();
  ctx.moveTo(x, y);
  ctx.lineTo(x - size * Math.cos(angle - 0.45), y - size * Math.sin(angle - 0.45));
  ctx.lineTo(x - size * Math.cos(angle + 0.45), y - size * Math.sin(angle + 0.45));
  ctx.closePath();
  ctx.fill();
}
