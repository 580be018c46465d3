// Everything the page shows: the current sign, the transcript, the status line and the messages.

const $ = (id) => document.getElementById(id);

const SIGN_NAMES = { nothing: ["–", "no hand"], space: ["␣", "space"], del: ["⌫", "delete"] };

export function showReading(result) {
  const [glyph, name] = SIGN_NAMES[result.letter] || [result.letter, `letter ${result.letter}`];
  $("letter").textContent = glyph;
  $("letter").classList.toggle("idle", !result.hand);
  $("letter-name").textContent = result.hand ? name : "no hand";
  const percent = Math.round(result.confidence * 100);
  $("confidence").textContent = result.hand ? `${percent}%` : "–";
  const bar = $("confidence-bar");
  bar.style.width = result.hand ? `${percent}%` : "0";
  bar.classList.toggle("low", percent < 60);
  const top = $("top");
  top.replaceChildren(...(result.hand ? result.top : []).map(([label, p]) => {
    const item = document.createElement("li");
    item.textContent = `${label} ${Math.round(p * 100)}%`;
    return item;
  }));
}

export function showTranscript({ word, text }) {
  if ($("word").textContent !== word) $("word").textContent = word;
  if ($("text").textContent !== text) $("text").textContent = text;
}

export function flashEvent(events) {
  if (events.some((e) => e.type === "letter" || e.type === "word")) {
    const box = $("word");
    box.classList.remove("flash");
    void box.offsetWidth; // restart the animation
    box.classList.add("flash");
  }
}

export function showConnection(connected) {
  const pill = $("status-connection");
  pill.textContent = connected ? "connected" : "disconnected";
  pill.classList.toggle("pill-on", connected);
  pill.classList.toggle("pill-off", !connected);
}

export function showStats({ fps, rtt }) {
  $("status-fps").textContent = fps.toFixed(1);
  $("status-rtt").textContent = rtt === null ? "–" : Math.round(rtt);
}

export function showServerInfo({ model, tts }) {
  $("status-model").textContent = model;
  $("status-tts").textContent = tts ? "server" : "browser";
}

export function showCameraHint(text) {
  const hint = $("camera-hint");
  hint.textContent = text || "";
  hint.hidden = !text;
}

// Messages by key, so one situation shows one message and clears it when it is over.
const messages = new Map();

export function setMessage(key, text, kind = "error") {
  if (text) messages.set(key, { text, kind });
  else messages.delete(key);
  $("messages").replaceChildren(...[...messages.values()].map(({ text: t, kind: k }) => {
    const p = document.createElement("p");
    p.className = `message message-${k}`;
    p.textContent = t;
    return p;
  }));
}
