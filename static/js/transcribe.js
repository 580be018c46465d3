// "Transcribe a video": the file goes to the server as it is (POST /api/videos), the page follows its reading,
// then shows the words, plays the video with their captions, and offers the captions and speech to download.
import { errorText } from "./errors.js";
import { sleep, statusLine } from "./status.js";

const form = document.getElementById("transcribe-form");
const input = document.getElementById("transcribe-file");
const button = document.getElementById("transcribe-start");
const progress = document.getElementById("transcribe-progress");
const status = document.getElementById("transcribe-status");
const result = document.getElementById("transcribe-result");
const video = document.getElementById("transcribe-video");
const audio = document.getElementById("transcribe-audio");
const POLL_MS = 500;
let videoUrl = null;

const say = statusLine(status);

// A refusal is {"error": {code, message}}; anything else (the network, a proxy's page) has no code.
async function call(url, options) {
  let reply, body = null;
  try {
    reply = await fetch(url, options);
    body = await reply.json();
  } catch (exc) {
    throw { message: `the server could not be reached (${exc})` };
  }
  if (!reply.ok) throw (body && body.error) || { message: `HTTP ${reply.status}` };
  return body;
}

async function transcribe(file) {
  let job = await call("/api/videos", {
    method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" },
  });
  progress.hidden = false;
  while (job.status === "reading") {
    progress.value = job.progress;
    say(`Reading the video… ${Math.round(job.progress * 100)} %`);
    await sleep(POLL_MS);
    job = await call(`/api/videos/${job.id}`);
  }
  if (job.status === "failed") throw job.error;
  return job;
}

function show(job, file) {
  const base = `/api/videos/${job.id}`;
  const words = job.transcript.words.length;
  const text = job.transcript.text || "(no word)";
  document.getElementById("transcribe-text").textContent = text;
  // The status line is the panel's one live region: it says the words too.
  say(`${words} word${words === 1 ? "" : "s"} in ${job.transcript.duration.toFixed(1)} s of video: ${text}`);
  if (videoUrl) URL.revokeObjectURL(videoUrl);
  videoUrl = URL.createObjectURL(file);
  video.replaceChildren();
  const track = Object.assign(document.createElement("track"), {
    kind: "captions", label: "Fingerspelling", srclang: "en", src: `${base}/captions.vtt`, default: true,
  });
  video.append(track);
  video.src = videoUrl;
  audio.hidden = !job.speech;
  if (job.speech) audio.src = `${base}/speech.wav`;
  for (const [id, name] of [["srt", "captions.srt"], ["vtt", "captions.vtt"], ["wav", "speech.wav"],
                            ["json", "transcript.json"]]) {
    const link = document.getElementById(`transcribe-${id}`);
    link.href = `${base}/${name}?download`;
    link.hidden = id === "wav" && !job.speech;
  }
  result.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = input.files[0];
  if (!file) return;
  button.disabled = true;
  result.hidden = true;
  progress.value = 0;
  say("Sending the video…");
  try {
    show(await transcribe(file), file);
  } catch (error) {
    say(errorText(error), true);
  } finally {
    progress.hidden = true;
    button.disabled = false;
  }
});
