// The live page: camera -> frames over Socket.IO -> results on screen -> speech.
import { initAnnounce } from "./announce.js";
import { initCalibration, isCalibrationError, personalAuth, showControls } from "./calibrate.js";
import { CameraError, startCamera } from "./camera.js";
import { errorText } from "./errors.js";
import { initLearnWords } from "./learn_words.js";
import { drawHand } from "./overlay.js";
import { initPractice, onEvents as practised } from "./practice.js";
import { FrameStream } from "./stream.js";
import { HandTracking } from "./tracking.js";
import * as view from "./view.js";
import { Voice } from "./voice.js";
import { keptMisreadings, keptWords, Words } from "./words.js";

const settings = document.body.dataset;
const video = document.getElementById("video");
const overlay = document.getElementById("overlay");
const captureCanvas = document.createElement("canvas");

// Socket.IO asks for the auth again on every (re)connect: the personal key, and what the decoder learned before.
function auth(callback) {
  personalAuth((personal) => {
    const words = keptWords();
    const misreadings = keptMisreadings();
    callback({ ...personal, ...(words.length && { words }), ...(misreadings && { misreadings }) });
  });
}
const socket = io({ transports: ["websocket", "polling"], tryAllTransports: true, auth });
initCalibration(socket, { setMessage: view.setMessage, reconnect });
initAnnounce();
initPractice(socket);
initLearnWords(socket, { setMessage: view.setMessage });
let serverTts = false;
let cameraReady = false;

const voice = new Voice({
  onBlocked: () => view.setMessage("sound", "Sound is blocked until you click or press a key on this page.", "info"),
  onPlaying: () => view.setMessage("sound", null),
});

// Where the hand is found: this device's tracker (landmarks are sent) or the server's (pictures are sent).
const tracking = new HandTracking({
  video, canvas: captureCanvas, captureWidth: Number(settings.captureWidth) || 480, setMessage: view.setMessage,
  settings: { modelComplexity: Number(settings.modelComplexity), minDetectionConfidence: Number(settings.minDetectionConfidence),
    minTrackingConfidence: Number(settings.minTrackingConfidence) },
});

const stream = new FrameStream({
  fps: Number(settings.sendFps) || 15,
  capture: async () => {
    if (!cameraReady || !socket.connected || video.readyState < 2 || !video.videoWidth) return null;
    return tracking.capture();
  },
  send: (seq, frame) => socket.emit("frame", { seq, ...frame }),
});

// A new connection, whose auth carries the personal key or not (calibrate.js switches models so). The frames in
// flight are answered first: a reply landing after the close is a console error, and a lost reading.
let switching = false; // a reconnect of our own (a model switch), not an outage
async function reconnect() {
  await stream.drain();
  switching = true;
  socket.disconnect().connect();
  stream.resume();
}

// Frames and word actions are answered on their own server threads: a frame read before a `choose` can arrive
// after the choice's ack. Each state carries the session's version; one older than what is shown is stale.
let shownVersion = 0;
function fresh(state) {
  if (!state || state.version <= shownVersion) return false;
  shownVersion = state.version;
  return true;
}

const words = new Words(socket, {
  fresh,
  showState: (state) => view.showTranscript(state),
  speakWord: (word) => { if (!serverTts) voice.speakInBrowser(word); }, // the server speaks it otherwise
  onLearned: showControls, // "Forget me" forgets what the browser keeps of the user too
  onEvents: practised, // a practised word's score, from a word action's ack
});

function speak(text) {
  if (serverTts) socket.emit("speak");
  else if (text.trim()) voice.speakInBrowser(text);
}

async function refreshServerInfo() {
  try {
    const info = await (await fetch("/api/status", { cache: "no-store" })).json();
    serverTts = info.tts;
    view.showServerInfo(info);
    view.setMessage("tts", info.tts ? null
      : "The server has no voice (espeak-ng is missing): this browser's own voice speaks instead.", "info");
  } catch (err) {
    view.setMessage("tts", "Could not read the server's status.", "info");
  }
}

let connectedBefore = false; // a reconnect may reach another server (behind a proxy): a fresh session
socket.on("connect", () => {
  view.showConnection(true);
  if (switching) {
    view.setMessage("server", "Model switched: the text starts afresh.", "info");
    setTimeout(() => view.setMessage("server", null), 4000);
  } else {
    view.setMessage("server", connectedBefore
      ? "Reconnected. The server started a fresh session: the word in progress was lost." : null, "info");
  }
  connectedBefore = true;
  switching = false;
  view.showTranscript({ word: "", text: "" }); // a new connection is a new session on the server
  shownVersion = 0; // ... whose states count from 1 again
  refreshServerInfo();
});

socket.on("disconnect", () => {
  view.showConnection(false);
  stream.inFlight.clear();
  if (!switching) view.setMessage("server", "The server is unreachable. Reconnecting automatically…");
});

socket.on("connect_error", () => {
  switching = false; // the server is down after all
  view.showConnection(false);
  view.setMessage("server", "The server is unreachable. Reconnecting automatically…");
});

socket.on("result", (result) => {
  stream.answered(result.seq);
  view.showReading(result);
  if (fresh(result)) {
    view.showTranscript(result);
    words.showResult(result);
  }
  view.flashEvent(result.events);
  practised(result.events);
  drawHand(overlay, result.landmarks);
  const word = result.events.find((e) => e.type === "word");
  if (word && !serverTts) voice.speakInBrowser(word.value);
});

socket.on("error", (error) => {
  stream.answered(error.seq);
  if (error.code === "tts_failed") {
    view.setMessage("tts", errorText(error), "info");
    serverTts = false;
  } else if (!isCalibrationError(error)) {
    view.setMessage("frame", errorText(error), "info");
    setTimeout(() => view.setMessage("frame", null), 4000);
  }
});

socket.on("speech", (speech) => {
  document.body.dataset.lastSpeech = speech.text;
  voice.playWav(speech.audio, speech.mime);
});

const actions = {
  "end-word": () => words.space(), // the Space key's button: a touch screen has no keys
  speak: () => speak(document.getElementById("text").textContent),
  undo: () => socket.emit("undo", (state) => words.apply(state)),
  clear: () => socket.emit("reset", (state) => fresh(state) && view.showTranscript(state)),
};
const KEYS = { Enter: "speak", Backspace: "undo", Escape: "clear" };

for (const [id, action] of Object.entries(actions)) {
  document.getElementById(id).addEventListener("click", action);
}
// Enter and Space belong to the focused control (a button, the recorder's summary, a link): the page's own
// shortcuts take them only when no control has the focus.
const CONTROLS = "a[href], button, summary, input, select, textarea, [contenteditable], [tabindex]";
document.addEventListener("keydown", (event) => {
  const action = KEYS[event.key];
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, select, textarea, [contenteditable]")) return; // typing in a form
  if ((event.key === "Enter" || event.key === " ") && event.target.closest(CONTROLS)) return;
  if (!action) {
    if (words.handleKey(event.key)) event.preventDefault();
    return;
  }
  event.preventDefault();
  actions[action]();
});

setInterval(() => {
  view.showStats(stream.stats());
  tracking.show();
}, 500);

(async () => {
  try {
    tracking.preload();
    await startCamera(video);
    // The stage takes the camera's shape, so the landmarks (fractions of the frame) land on the hand.
    document.querySelector(".stage").style.aspectRatio = `${video.videoWidth} / ${video.videoHeight}`;
    cameraReady = true;
    view.showCameraHint(null);
    stream.start();
    await tracking.start();
  } catch (err) {
    const text = err instanceof CameraError ? err.message : `The camera could not start (${err}).`;
    view.showCameraHint("No camera");
    view.setMessage("camera", text);
  }
})();
