// A panel's status line (record, transcribe): one sentence, shown as an error or not; and a pause between steps.
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function statusLine(element) {
  return (text, isError = false) => {
    element.textContent = text;
    element.classList.toggle("error", isError);
  };
}
