// Record mode on the live page: captures frames from the same camera preview and sends them to the
// '/record' Socket.IO namespace until the server holds N frames with a hand for the chosen letter; the
// server then appends them to instance/datasets/<data set>.npz (listed in the admin, usable by training jobs).
import { captureFrame } from "./camera.js";
import { errorText } from "./errors.js";
import { sleep, statusLine } from "./status.js";

const form = document.getElementById("record-form");
const video = document.getElementById("video");
const status = document.getElementById("record-status");
const progress = document.getElementById("record-progress");
const startButton = document.getElementById("record-start");
const stopButton = document.getElementById("record-cancel");
const canvas = document.createElement("canvas");
const captureWidth = Number(document.body.dataset.captureWidth) || 480;
const FRAME_GAP_MS = 100;  // ~10 frames a second: varied enough, well under the server's rate limit
let socket = null;
let stopping = false;

const say = statusLine(status);

function recordSocket() {
  if (!socket) socket = window.io("/record", { transports: ["websocket", "polling"] });
  return socket;
}

async function record(request) {
  const io = recordSocket().timeout(10000);
  const started = await io.emitWithAck("start", request);
  if (started.error) throw new Error(errorText(started.error));
  progress.max = started.needed;
  progress.value = 0;
  for (let n = 3; n > 0 && !stopping; n--) {
    say(`Hold ${started.letter} in view… ${n}`);
    await sleep(1000);
  }
  while (!stopping) {
    if (video.readyState < 2 || !video.videoWidth) throw new Error("the camera is not running");
    const reply = await io.emitWithAck("frame", await captureFrame(video, canvas, captureWidth));
    if (reply.error && reply.error.code !== "rate_limited") throw new Error(errorText(reply.error));
    if (reply.collected !== undefined) {
      progress.value = reply.collected;
      say(`${started.letter}: ${reply.collected} / ${reply.needed}${reply.hand ? "" : " (no hand in view)"}`);
    }
    if (reply.saved) return `Saved ${reply.needed} frames of ${started.letter} to “${reply.dataset}” ` +
      `(${reply.samples} samples in all). Pick another letter, or train on it in the admin.`;
    await sleep(FRAME_GAP_MS);
  }
  await io.emitWithAck("cancel");
  return "Stopped: nothing was saved.";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!window.io) return say("The connection library did not load: reload the page.", true);
  // form.elements, not form.dataset: a form's `dataset` is its data-* attributes.
  const field = (name) => form.elements.namedItem(name).value;
  const request = {
    dataset: field("dataset").trim(), signer: field("signer").trim(), letter: field("letter"),
    frames: Number(field("frames")),
  };
  if (!request.signer) return say("Enter your name first: it keeps your samples apart from others'.", true);
  stopping = false;
  startButton.disabled = true;
  stopButton.disabled = false;
  try {
    say(await record(request));
  } catch (failure) {
    say(`Not recorded: ${failure.message}`, true);
  } finally {
    startButton.disabled = false;
    stopButton.disabled = true;
  }
});

stopButton.addEventListener("click", () => { stopping = true; });
