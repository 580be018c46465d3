// Calibration on the live page: walk through the signable classes (a reference drawing, a countdown, ~1.5 s of
// frames with a hand per class, redo and skip), then adapt on the server and read with the personal model.
// The server's protocol: `calibrate` {label}, `adapt`, `adapt_progress`, `adapted`, `forget`, connect auth
// {personal_key}. The key is a capability: it stays in this browser's localStorage and goes only to this server.

import { errorText } from "./errors.js";
import { forgetLearned, keptMisreadings, keptWords } from "./words.js";

const $ = (id) => document.getElementById(id);
const STORE = { key: "sign2sound.personalKey", shared: "sign2sound.useShared", offered: "sign2sound.calibrationOffered" };
const CODES = new Set(["bad_label", "too_few_samples", "adapt_failed", "adapt_busy", "rate_limited", "store_full",
  "unknown_key", "personal_unavailable"]);
const NO_HAND_MS = 1500; // capturing without a hand this long: say so
const MIN_TAKE = 3; // frames with a hand a take needs, whatever the frame rate

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
      finish();
    }
  });
  $("calibrate").addEventListener("click", start);
  $("calibration-offer-yes").addEventListener("click", start);
  $("calibration-offer-no").addEventListener("click", () => {
    localStorage.setItem(STORE.offered, "1");
    $("calibration-offer").hidden = true;
  });
  $("calibration-redo").addEventListener("click", () => signal("redo"));
  $("calibration-skip").addEventListener("click", () => signal("skip"));
  $("calibration-cancel").addEventListener("click", () => signal("cancel"));
  $("use-shared").addEventListener("click", toggleShared);
  $("forget-me").addEventListener("click", forget);
  $("calibration-offer").hidden = Boolean(localStorage.getItem(STORE.offered) || localStorage.getItem(STORE.key));
  showControls();
  loadPoses();
}

// "Forget me" shows while this browser keeps anything of the user: a personal key, or what the decoder learned.
export function showControls() {
  const hasKey = Boolean(localStorage.getItem(STORE.key));
  $("use-shared").hidden = !hasKey;
  $("forget-me").hidden = !hasKey && !keptWords().length && !keptMisreadings();
  $("use-shared").textContent = localStorage.getItem(STORE.shared) ? "Use my model" : "Use the shared model";
}

function onResult(result) {
  $("status-model").textContent = result.model === "personal" ? "yours" : result.model;
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

function say(text, isError = false) {
  $("calibration-status").textContent = text;
  $("calibration-status").classList.toggle("error", isError);
}

async function start() {
  if (step >= 0) return; // already calibrating
  localStorage.setItem(STORE.offered, "1");
  $("calibration-offer").hidden = true;
  $("calibration-panel").hidden = false;
  $("calibrate").disabled = true;
  $("calibration-total").textContent = classes.length;
  for (step = 0; step < classes.length; step += 1) {
    const outcome = await calibrateClass(classes[step]);
    if (outcome === "cancel") {
      say("Calibration cancelled: nothing was changed.");
      return finish(true);
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
  $("calibration-class").textContent = "…";
  $("calibration-progress").value = 0;
  say("Adapting to your hand…");
  socket.emit("adapt", (ack) => {
    if (ack && ack.queued > 0) say(`Adapting to your hand… waiting for ${ack.queued} other adaptation(s) first.`);
  });
}

function onAdapted(result) {
  forgetLearned({ words: false }); // the new model's misreadings are learned afresh (the server's are cleared)
  localStorage.setItem(STORE.key, result.key);
  localStorage.removeItem(STORE.shared);
  const pct = (x) => `${Math.round(x * 100)}%`;
  say(`Done in ${Math.round(result.seconds)} s: on your held-back frames the shared model read ${pct(result.before)}, `
    + `yours reads ${pct(result.after)}.`);
  $("status-model").textContent = "yours";
  showControls();
  finish();
}

function finish(hide = false) {
  step = -1;
  take = null;
  onSignal = null;
  $("calibrate").disabled = false;
  if (hide) $("calibration-panel").hidden = true;
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
    $("calibration-panel").hidden = true;
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

const BONES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10], [10, 11], [11, 12],
  [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [0, 17], [17, 18], [18, 19], [19, 20]];

// {points: 21 x [x, y], path: the motion's points in the same frame, or null}; null when the file lacks the class.
function poseOf(label) {
  const entry = poses && poses.classes && poses.classes[label];
  if (!entry || !Array.isArray(entry.landmarks) || entry.landmarks.length !== 21) return null;
  const points = entry.landmarks;
  const [x0, y0] = points[entry.traced_by ?? 0]; // the motion is relative to where this landmark starts
  const path = Array.isArray(entry.motion) ? entry.motion.map(([dx, dy]) => [x0 + dx, y0 + dy]) : null;
  return { points, path };
}

function drawPose(label) {
  const canvas = $("calibration-pose");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const pose = poseOf(label);
  if (!pose) {
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
  const pad = 20;
  const scale = (canvas.width - 2 * pad) / span;
  const left = (canvas.width - (Math.max(...xs) - x0) * scale) / 2;
  const top = (canvas.height - (Math.max(...ys) - y0) * scale) / 2;
  // Mirrored, centred: the user sees their hand in the selfie-mirrored preview, so the drawing matches that.
  const at = ([x, y]) => [canvas.width - (left + (x - x0) * scale), top + (y - y0) * scale];
  ctx.lineWidth = 4;
  ctx.strokeStyle = "#1a73e8";
  ctx.beginPath();
  for (const [a, b] of (poses.connections || BONES)) {
    ctx.moveTo(...at(pose.points[a]));
    ctx.lineTo(...at(pose.points[b]));
  }
  ctx.stroke();
  ctx.fillStyle = "#ff3d7f";
  for (const p of pose.points) {
    ctx.beginPath();
    ctx.arc(...at(p), 4, 0, 2 * Math.PI);
    ctx.fill();
  }
  if (pose.path && pose.path.length > 1) { // J and Z: the motion, as a dashed arrow
    ctx.setLineDash([6, 4]);
    ctx.strokeStyle = "#e37400";
    ctx.beginPath();
    ctx.moveTo(...at(pose.path[0]));
    for (const p of pose.path.slice(1)) ctx.lineTo(...at(p));
    ctx.stroke();
    ctx.setLineDash([]);
  }
}
