// Learning from free spelling: the words this user confirms (a choice, "keep it", a decoded word not undone before
// the next one ends) teach the server their hand, as practice does, and past a number of them the server adapts
// (`adapted` with source "words": "model: yours" shows as after a calibration). The "Learn from my spelling" switch
// is on unless this browser turned it off (localStorage); while off, the page tells the server on every connect
// (`learn_words` {on: false}: the server's default is on) and on every change.

import { announce } from "./announce.js";

const $ = (id) => document.getElementById(id);
const STORE = "sign2sound.learnWords"; // "off" once the user turned it off here

const learning = () => localStorage.getItem(STORE) !== "off";

export function initLearnWords(socket, { setMessage }) {
  const box = $("learn-words");
  box.checked = learning();
  socket.on("connect", () => { if (!learning()) socket.emit("learn_words", { on: false }); });
  box.addEventListener("change", () => {
    if (box.checked) localStorage.removeItem(STORE);
    else localStorage.setItem(STORE, "off");
    socket.emit("learn_words", { on: box.checked });
  });
  socket.on("adapted", (result) => {
    if (result.source !== "words") return;
    const text = result.switched === false
      ? "Learned from your spelling, but some of your signs look alike to the model: the shared model stays."
      : result.kept === "current" ? "Your model stays: the one made with your spelling read your latest signs less well."
        : "Learned from your spelling: reading with your model now.";
    setMessage("learned", text, "info");
    announce(text);
    setTimeout(() => setMessage("learned", null), 8000);
  });
}
