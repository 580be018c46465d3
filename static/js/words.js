// Words on the page: up to three suggestions under the growing word (click, or keys 1-3), the decoded word with
// its raw spelling one click or key away ("you spelled XYZ: keep it", key K), the keyboard's Space ending the
// word. Protocol: result.suggestions, the `word` and `replace` events, client `space` and `choose`.
// What the decoder learned of the user stays in this browser and goes to the server on connect (auth {"words",
// "misreadings"}), so a returning user's names stay as they spell them and their misread letters are fixed from
// the first word: the spellings they kept (a choice, or undo restoring a spelling) and the server's last
// `misreadings` event. The server stores none of it.

const $ = (id) => document.getElementById(id);
const KEPT = "sign2sound.words"; // localStorage: the kept spellings, the latest last
const MAX_KEPT = 200; // the most the server takes on connect (app.live.session.MAX_KEPT_WORDS)
const MISREADINGS = "sign2sound.misreadings"; // localStorage: the last `misreadings` event, as it came

export function keptWords() {
  try {
    const words = JSON.parse(localStorage.getItem(KEPT) || "[]");
    return Array.isArray(words) ? words.filter((w) => /^[A-Z]{1,40}$/.test(w)).slice(-MAX_KEPT) : [];
  } catch (err) {
    return []; // unreadable: start afresh rather than send the server something it refuses
  }
}

export function keptMisreadings() {
  try {
    const learned = JSON.parse(localStorage.getItem(MISREADINGS));
    return learned && typeof learned === "object" && !Array.isArray(learned) ? learned : null;
  } catch (err) {
    return null;
  }
}

// "Forget me" (everything), or a new personal model (its misreadings are not the old one's).
export function forgetLearned({ words = true } = {}) {
  if (words) localStorage.removeItem(KEPT);
  localStorage.removeItem(MISREADINGS);
}

function keepWord(word) {
  const words = keptWords().filter((w) => w !== word);
  words.push(word);
  localStorage.setItem(KEPT, JSON.stringify(words.slice(-MAX_KEPT)));
}

export class Words {
  // fresh(state): false for a state older than one shown; showState(state): show {word, text};
  // speakWord(word): the browser's voice when the server has none; onLearned(): this browser keeps more of the user;
  // onEvents(events): every ack's events (a practised word's score).
  constructor(socket, { fresh, showState, speakWord, onLearned, onEvents = () => {} }) {
    this.onEvents = onEvents;
    this.socket = socket;
    this.fresh = fresh;
    this.showState = showState;
    this.speakWord = speakWord;
    this.onLearned = onLearned;
    this.choices = [];
    socket.on("misreadings", (learned) => {
      localStorage.setItem(MISREADINGS, JSON.stringify(learned));
      this.onLearned();
    });
    socket.on("error", (error) => { // refused on connect: sent again it would be refused again, at every visit
      if (error.code === "bad_words") localStorage.removeItem(KEPT);
      if (error.code === "bad_misreadings") localStorage.removeItem(MISREADINGS);
    });
    $("keep").addEventListener("click", () => this.keep());
    $("suggestions").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-index]");
      if (button) this.choose(Number(button.dataset.index));
    });
  }

  // Every result: suggestions while a word grows; a finished word's alternatives until the next one starts.
  showResult(result) {
    const finished = result.events.findLast((e) => e.type === "word");
    if (result.word) this.show(result.suggestions, null);
    else if (finished) this.show(finished.alternatives, finished);
  }

  // An ack of `space`, `choose` or `undo`: the transcript, the word it finished or replaced (spoken).
  // A newer state shown already (a frame's) keeps its transcript; the word this ack finished is shown all the same.
  // The server keeps what the user chose (chosen) and a spelling undo restored: so does this browser.
  apply(state, chosen = false) {
    if (!state) return;
    this.onEvents(state.events);
    const current = this.fresh(state);
    if (current) this.showState(state);
    const word = state.events.findLast((e) => e.type === "word" || e.type === "replace");
    if (word && (chosen || (word.type === "replace" && word.value === word.raw))) {
      keepWord(word.value);
      this.onLearned();
    }
    if (word) {
      this.show(word.alternatives, word);
      this.speakWord(word.value);
    } else if (current && !state.word) {
      this.show([], null);
    }
  }

  show(choices, finished) {
    // Results come 15 times a second: redraw only a change, so a button is not replaced under the pointer.
    const key = JSON.stringify([choices, finished]);
    if (key === this.shown) return;
    this.shown = key;
    this.choices = choices || [];
    // A finished word's alternatives replace it: say so, or they read as suggestions for the next word.
    const caption = finished && this.choices.length ? [Object.assign(document.createElement("li"), {
      className: "instead", textContent: `instead of ${finished.value}:` })] : [];
    $("suggestions").replaceChildren(...caption, ...this.choices.map((word, i) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.index = i;
      button.setAttribute("aria-keyshortcuts", String(i + 1));
      button.append(word, Object.assign(document.createElement("kbd"), { textContent: String(i + 1) }));
      item.append(button);
      return item;
    }));
    const changed = finished && finished.value !== finished.raw;
    $("spelled").hidden = !changed;
    $("spelled-raw").textContent = changed ? finished.raw : "";
  }

  choose(index) {
    if (index < this.choices.length) this.socket.emit("choose", { index }, (state) => this.apply(state, true));
  }

  keep() {
    if (!$("spelled").hidden) this.socket.emit("choose", { raw: true }, (state) => this.apply(state, true));
  }

  space() {
    this.socket.emit("space", (state) => this.apply(state));
  }

  // Keys 1-3, K and Space; true when the key was one of them.
  handleKey(key) {
    if (["1", "2", "3"].includes(key)) this.choose(Number(key) - 1);
    else if (key === "k" || key === "K") this.keep();
    else if (key === " ") this.space();
    else return false;
    return true;
  }
}
