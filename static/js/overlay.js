// The hand's 21 landmarks drawn over the video. The overlay is mirrored by CSS with the video, so it draws
// in the camera's true coordinates (MediaPipe's x, y are fractions of the frame's width and height).

const HAND_CONNECTIONS = [
  [0, 1], [1, 2], [2, 3], [3, 4], // thumb
  [0, 5], [5, 6], [6, 7], [7, 8], // index
  [5, 9], [9, 10], [10, 11], [11, 12], // middle
  [9, 13], [13, 14], [14, 15], [15, 16], // ring
  [13, 17], [0, 17], [17, 18], [18, 19], [19, 20], // pinky and palm
];

export function drawHand(canvas, landmarks) {
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  if (!landmarks) return;
  const points = landmarks.map(([x, y]) => [x * width, y * height]);
  ctx.lineWidth = Math.max(3, width / 160);
  ctx.strokeStyle = "#00e5ff";
  ctx.beginPath();
  for (const [a, b] of HAND_CONNECTIONS) {
    ctx.moveTo(...points[a]);
    ctx.lineTo(...points[b]);
  }
  ctx.stroke();
  ctx.fillStyle = "#ff3d7f";
  const radius = Math.max(4, width / 120);
  for (const [x, y] of points) {
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, 2 * Math.PI);
    ctx.fill();
  }
}
