// The webcam: start it with a clear message for each way it can fail, and grab frames as JPEG bytes.

const CAMERA_MESSAGES = {
  NotAllowedError: "Camera permission was denied. Allow the camera for this page (the camera icon in the address bar), then reload.",
  SecurityError: "Camera permission was denied. Allow the camera for this page (the camera icon in the address bar), then reload.",
  NotFoundError: "No camera was found. Connect a camera, then reload.",
  OverconstrainedError: "No camera was found that can film at this size. Connect another camera, then reload.",
  NotReadableError: "The camera is busy: another application is using it. Close it, then reload.",
  AbortError: "The camera could not start. Reload to try again.",
};

export class CameraError extends Error {}

export async function startCamera(video) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    // Browsers only offer the camera to secure pages: https, localhost or 127.0.0.1.
    throw new CameraError("The camera is only available on a secure page: open this app as http://localhost:5000 (or over https).");
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" },
      audio: false,
    });
  } catch (err) {
    throw new CameraError(CAMERA_MESSAGES[err.name] || `The camera could not start (${err.name || err}).`);
  }
  video.srcObject = stream;
  await video.play();
  return stream;
}

// One frame of the video, unmirrored (the camera's true image), scaled to at most `maxWidth`, as JPEG bytes.
export function captureFrame(video, canvas, maxWidth, quality = 0.7) {
  const scale = Math.min(1, maxWidth / video.videoWidth);
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? blob.arrayBuffer().then(resolve, reject) : reject(new Error("JPEG encoding failed"))),
      "image/jpeg", quality);
  });
}
