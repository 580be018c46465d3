// What the page says for each `error` code the server can send. One line per code; README.md's
// "Error codes" table lists the same codes with the same words, and tests/test_errors.py checks both
// against the codes in app/ (a new code needs a line here and a row there).
export const ERROR_MESSAGES = {
  bad_payload: "The page sent something the server could not read. Reload the page.",
  unsupported_format: "A camera picture was not a JPEG or PNG image and was skipped.",
  bad_image: "A camera picture arrived damaged and was skipped.",
  too_large: "A camera picture was too big to send and was skipped.",
  too_many_pixels: "A camera picture had too many pixels and was skipped.",
  bad_landmarks: "The page's hand tracker sent landmarks the server could not read, so that reading was skipped.",
  rate_limited: "Too many requests in a short time, so some were refused. Wait a little and try again.",
  server_full: "The server is reading as many people as it can; yours will be read as soon as someone leaves.",
  no_session: "The connection to the server was reset. Reload the page.",
  closed: "This session has ended. Reload the page.",
  server_error: "The server could not read one picture; it goes on with the next.",
  nothing_to_speak: "There is no text to speak yet.",
  tts_failed: "The server's voice failed: this browser's own voice speaks instead.",
  bad_request: "A value in the recording form is not accepted.",
  not_recording: "No recording is running: press Record first.",
  no_hand: "Too few pictures showed a hand, so nothing was saved. Hold the sign in view and try again.",
  not_saved: "The server could not keep your recording (it may hold too many data sets: try an existing name).",
  bad_choice: "That choice is not among the word's suggestions.",
  nothing_to_choose: "There is no word to choose for yet.",
  bad_words: "The words this browser kept for you could not be read, so the server left them out.",
  bad_misreadings: "What this browser kept of how your letters are read could not be read, so the server left it out.",
  bad_label: "That sign cannot be calibrated: choose A to Z, space or del.",
  class_full: "Enough pictures of this sign are recorded.",
  too_few_samples: "Not enough of your signs were recorded yet: calibrate or practise some signs first.",
  bad_word: "A practice word is 1 to 40 letters A to Z.",
  adapt_busy: "An adaptation is already running for you, or too many are waiting: try again in a minute.",
  adapt_failed: "Adapting to your hand failed; the shared model is still in use. Try again.",
  store_full: "Your personal model could not be stored; the shared model is still in use.",
  unknown_key: "Your personal model was not found (forgotten, or removed to make room): reading with the shared model. Calibrate again to make one.",
  personal_unavailable: "Your personal model is kept in the shared store, which cannot be reached right now: reading with the shared model. Reconnect later to get yours back.",
  not_video: "That file is not a video this server can read (MP4, WebM, MOV, AVI and the like are).",
  video_corrupt: "That video is damaged: it could not be read. Try exporting it again.",
  video_too_long: "That video is too long to transcribe here; send a shorter clip.",
  video_too_large: "That video file is too big to send; send a smaller or shorter one.",
  video_no_hand: "No hand was seen anywhere in that video, so there is nothing to transcribe.",
  cross_site: "Only this site's own page can send a video to it.",
  video_busy: "The server is transcribing as many videos as it can: try again in a minute.",
  video_not_found: "That transcript is no longer kept (they expire after a while): transcribe the video again.",
  video_worker_lost: "The worker reading that video stopped before it finished: send it again.",
  video_queue_down: "Videos cannot be transcribed right now (the server's job queue is unreachable): try again shortly.",
};

// The plain message for an `error` from the server. The server's own text is added only where it names
// what to change (a form field) or the code is one this page does not know.
export function errorText(error) {
  const plain = ERROR_MESSAGES[error && error.code];
  if (!plain) return `Something went wrong: ${(error && error.message) || "unknown error"}.`;
  return error.field ? `${plain} (${error.message})` : plain;
}
