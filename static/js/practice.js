// Practice on the live page: the page names a word, the user spells it and ends it (the space sign, or Space), the
// page shows each letter read right, misread as X, or missed, a score, and the next word. Each practised word is
// also labelled frames of the user's hand: the server adapts to them in the background, and "model: yours" shows.
// The words (ml/practice_words.py): a fixed opening with every letter A-Z and `space` in about two minutes, then
// a graded list (short common words, longer ones, names), preferring words with the letters this user gets wrong.
// The server's protocol: `practice` {word} (null ends), the word event's "practice" {target, correct, letters}.

import { announce } from "./announce.js";
import { isCalibrationError, showControls } from "./calibrate.js";
import { errorText } from "./errors.js";

const $ = (id) => document.getElementById(id);
// The words and the del drill come from the server (ml/practice_words.py: the list `ml.experiments practice`
// measures): its first `opening` words hold every letter A-Z; every `del_every`-th word is a del drill.
const listData = () => $("practice-panel").dataset; // words, opening, delEvery
const listWords = () => listData().words.split(",");
const LOOK_AHEAD = 8; // the next word is the likeliest to practise a weak letter among the next few of the list
const NEXT_MS = 1500; // the score stays this long before the next word

let socket = null;
let active = false;
let item = null; // {word, drill: a del drill}
let queue = [];
let asked = 0; // words asked since practice started (every del_every-th is a del drill)
let score = { right: 0, done: 0 };
const misses = {}; // letter -> times read wrong or missed in practice, plus the confusions an adaptation named

export function initPractice(liveSocket) {
  socket = liveSocket;
  $("practice").addEventListener("click", start);
  $("calibration-offer-practice").addEventListener("click", start);
  $("practice-skip").addEventListener("click", () => next());
  $("practice-adapt").addEventListener("click", () => socket.emit("adapt"));
  $("practice-stop").addEventListener("click", stop);
  socket.on("adapted", (result) => {
    for (const meant of Object.keys(result.confused || {})) misses[meant] = (misses[meant] || 0) + 2;
    if (!active) return;
    const text = result.switched === false ? "Adapted, but some of your signs look alike to the model: the shared model stays."
      : result.kept === "current" ? "Your model stays: the one made with this practice read your latest signs less well (your practice is kept for next time)."
        : "Adapted to your practice: reading with your model now.";
    status(text);
    announce(text);
  });
  socket.on("adapt_progress", ({ step, steps }) => {
    if (active) status(`Learning your hand… ${Math.round((100 * step) / (steps || 1))}%`);
  });
  socket.on("error", (error) => { // an adaptation's (Learn my hand now): said here while practising
    if (active && isCalibrationError(error)) {
      status(errorText(error));
      announce(errorText(error));
    }
  });
  socket.on("connect", () => { if (active) send(); }); // a new session (a model switch): practise the word again
}

// Every word event the page sees (a result's, an ack's): a practised word is scored.
export function onEvents(events) {
  const word = active && (events || []).find((e) => e.type === "word" && e.practice);
  if (word) showScore(word.practice);
}

function start() {
  if (active) return;
  active = true;
  queue = listWords().slice(0, Number(listData().opening));
  score = { right: 0, done: 0 };
  asked = 0;
  document.body.classList.add("practising");
  $("practice-panel").hidden = false;
  localStorage.setItem("sign2sound.calibrationOffered", "1"); // chosen: the first-visit offer is answered
  showControls();
  $("practice").disabled = true;
  $("calibrate").disabled = true; // one at a time: a calibration types (and so scores) nothing
  socket.emit("reset"); // a practice word starts on a clean page
  next();
  $("practice-heading").focus({ preventScroll: true });
}

function stop() {
  active = false;
  socket.emit("practice", { word: null });
  document.body.classList.remove("practising");
  $("practice-panel").hidden = true;
  $("practice").disabled = false;
  $("calibrate").disabled = false;
  $("practice").focus();
}

function weight(word) {
  return [...new Set(word)].reduce((sum, letter) => sum + (misses[letter] || 0), 0);
}

function pick() {
  if (queue.length) return queue.shift();
  const graded = listWords().slice(Number(listData().opening));
  const seen = new Set(JSON.parse($("practice-panel").dataset.seen || "[]"));
  let list = graded.filter((w) => !seen.has(w));
  if (!list.length) list = graded; // all practised: round again
  const window = list.slice(0, LOOK_AHEAD);
  const best = window.reduce((a, b) => (weight(b) > weight(a) ? b : a), window[0]);
  $("practice-panel").dataset.seen = JSON.stringify([...seen, best].slice(-graded.length + 1));
  return best;
}

function next() {
  asked += 1;
  const word = pick();
  item = { word, drill: asked % Number(listData().delEvery) === 0 };
  send();
  $("practice-word").textContent = word;
  $("practice-word").setAttribute("aria-label", word.split("").join(" "));
  const weak = [...new Set(word)].filter((c) => misses[c]);
  const last = word[word.length - 1];
  const how = item.drill ? `Spell it, sign del to take back the ${last}, sign ${last} again, then sign space (or press Space).`
    : "Spell it, then sign space (or press Space).";
  $("practice-how").textContent = weak.length
    ? `${how} Your ${weak.join(", ")} ${weak.length > 1 ? "were" : "was"} read wrong before: try with your hand turned a little.`
    : how;
  $("practice-letters").replaceChildren();
  status("");
  announce(`Practice: spell ${word.split("").join(" ")}`);
}

function send() {
  socket.emit("practice", { word: item.word });
}

function status(text) {
  $("practice-status").textContent = text;
}

function showScore(result) {
  score.done += 1;
  if (result.correct) score.right += 1;
  for (const letter of result.letters) if (!letter.ok) misses[letter.expected] = (misses[letter.expected] || 0) + 1;
  const verdicts = result.letters.map((l) => (l.ok ? "right" : l.read ? `misread as ${l.read}` : "missed"));
  $("practice-letters").replaceChildren(...result.letters.map((l, i) => {
    const li = document.createElement("li");
    li.className = l.ok ? "ok" : l.read ? "misread" : "missed";
    li.append(Object.assign(document.createElement("strong"), { textContent: l.expected }), ` ${verdicts[i]}`);
    return li;
  }));
  $("practice-score").textContent = `${score.right} of ${score.done} words right`;
  const summary = result.correct ? `${result.target}: right.` : `${result.target}: ${result.letters.map(
    (l, i) => `${l.expected} ${verdicts[i]}`).join(", ")}.`;
  status(summary);
  announce(`${summary} ${score.right} of ${score.done} words right.`);
  setTimeout(() => { if (active) next(); }, NEXT_MS);
}
