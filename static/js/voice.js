// Speech out: the server's WAV when it has a voice, else the browser's speechSynthesis. Browsers refuse to
// play sound before the person has clicked or pressed a key on the page; then the clip waits for that.

export class Voice {
  constructor({ onBlocked, onPlaying }) {
    this.serverVoice = false;
    this.pending = null;
    this.onBlocked = onBlocked;
    this.onPlaying = onPlaying;
    const retry = () => this.pending && this.pending();
    window.addEventListener("pointerdown", retry);
    window.addEventListener("keydown", retry);
  }

  playWav(audio, mime = "audio/wav") {
    const url = URL.createObjectURL(new Blob([audio], { type: mime }));
    const element = new Audio(url);
    element.addEventListener("ended", () => URL.revokeObjectURL(url));
    this.attempt(() => element.play());
  }

  speakInBrowser(text) {
    if (!("speechSynthesis" in window)) return;
    this.attempt(async () => {
      window.speechSynthesis.cancel();
      window.speechSynthesis.speak(new SpeechSynthesisUtterance(text.toLowerCase()));
    });
  }

  attempt(play) {
    this.pending = null;
    Promise.resolve().then(play).then(() => this.onPlaying(), (err) => {
      if (err && err.name === "NotAllowedError") {
        this.pending = () => this.attempt(play);
        this.onBlocked();
      }
    });
  }
}
