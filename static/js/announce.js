// Screen readers: one polite live region (#announce) says each change of the transcript once. The word, the
// sentence and the suggestions are drawn by view.js and words.js; this module watches what they show and, after
// each batch of changes (a result, an ack), says what changed in one message: a letter added or deleted (the word
// spelled out), a finished or replaced word, a cleared text, new suggestions or "instead of" alternatives. Other
// modules (practice.js) add their own message with `announce`: said with the next change, or alone just after.

const $ = (id) => document.getElementById(id);

const spell = (word) => word.split("").join(" ");
const lastWord = (text) => text.trim().split(/\s+/).pop() || "";

// The suggestions as words: each button's word without its key hint, after the "instead of" caption if any.
function choices() {
  const list = $("suggestions");
  const words = [...list.querySelectorAll("button")].map((b) => b.firstChild ? b.firstChild.textContent : "");
  if (!words.length) return "";
  const instead = list.querySelector(".instead");
  return `${instead ? instead.textContent : "Suggestions:"} ${words.join(", ")}`;
}

function snapshot() {
  return { word: $("word").textContent, text: $("text").textContent, choices: choices() };
}

// What changed from `was` to `now`, as one sentence (empty: nothing worth saying).
export function describe(was, now) {
  const parts = [];
  if (now.word !== was.word) {
    if (now.word.length > was.word.length) parts.push(spell(now.word));
    else if (now.word) parts.push(`deleted, ${spell(now.word)}`);
  }
  if (now.text !== was.text) {
    if (!now.text && !now.word) parts.push("cleared");
    else if (now.text.length < was.text.length && now.word === was.word) parts.push(`deleted, ${now.text || "empty"}`);
    else if (lastWord(now.text) && now.text.trim() !== was.text.trim()) parts.push(`word: ${lastWord(now.text)}`);
  }
  if (now.choices !== was.choices && now.choices) parts.push(now.choices);
  return parts.join(". ");
}

let pending = []; // messages of other modules, said with the next change
let flush = null;

function say(message) {
  const all = [message, ...pending].filter(Boolean).join(". ");
  pending = [];
  clearTimeout(flush);
  if (all) $("announce").textContent = all;
}

export function announce(message) {
  pending.push(message);
  clearTimeout(flush);
  flush = setTimeout(() => say(""), 150); // no change of the transcript came with it
}

export function initAnnounce() {
  let shown = snapshot();
  const observer = new MutationObserver(() => {
    const now = snapshot();
    const message = describe(shown, now);
    shown = now;
    if (message) say(message);
  });
  for (const id of ["word", "text", "suggestions"]) {
    observer.observe($(id), { childList: true, characterData: true, subtree: true });
  }
}
