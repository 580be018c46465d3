// The admin page: start training jobs, follow them live, activate models, list data sets.
// Talks to the JSON API (/api/admin/...) with the session cookie and the CSRF token from the page's
// <meta name="csrf-token">; job progress arrives on the '/admin' Socket.IO namespace, or by polling
// when the Socket.IO client is not available.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const jobs = new Map();  // id -> job, newest data wins
  let selected = null;
  let pollTimer = null;

  async function api(path, options = {}) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
    if (init.method && init.method !== "GET") {
      init.headers["X-CSRFToken"] = csrf;
      if (init.body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(init.body);
      }
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      window.location.assign("/admin/login?next=/admin");
      throw new Error("login required");
    }
    const data = await response.json().catch(() => ({}));
    if (response.status === 503 && data.code === "queue_unreachable") queueDown(data.error);
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  function notice(text) { $("notice").textContent = text; }

  // Cluster mode: Redis (the job queue and shared store) is down. Say so, and retry until it is back.
  let queueRetry = null;
  function queueDown(message) {
    notice(message);
    if (queueRetry) return;
    queueRetry = setInterval(async () => {
      try {
        await Promise.all([loadJobs(), loadModels()]);
        clearInterval(queueRetry);
        queueRetry = null;
        notice("The job queue is reachable again.");
      } catch (e) { /* still down: the notice stays */ }
    }, 3000);
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function button(label, onClick, secondary) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (secondary) b.className = "secondary";
    b.addEventListener("click", onClick);
    return b;
  }

  const pct = (x) => (typeof x === "number" ? `${(100 * x).toFixed(1)} %` : "–");
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");
  const last = (job) => job.progress[job.progress.length - 1] || null;
  const valAcc = (job) => job.metrics.val_acc ?? job.metrics.accuracy ?? (last(job) || {}).val_acc;

  // jobs
  function renderJobs() {
    const body = $("jobs");
    body.replaceChildren();
    const list = [...jobs.values()].sort((a, b) => b.id - a.id);
    for (const job of list) {
      const row = body.insertRow();
      if (job.id === selected) row.className = "selected";
      cell(row, job.id);
      cell(row, job.status, `status-${job.status}`);
      cell(row, job.params.datasets.join(", ") + (job.params.base ? ` (from ${job.params.base})` : ""));
      const ep = last(job);
      cell(row, ep ? `${ep.epoch} / ${ep.epochs}` : `0 / ${job.params.epochs}`);
      cell(row, pct(valAcc(job)));
      cell(row, when(job.started_at));
      const actions = row.insertCell();
      actions.append(button("Show", () => select(job.id), true));
      if (job.status === "queued" || job.status === "running") {
        actions.append(" ", button("Cancel", () => cancel(job.id), true));
      }
    }
    if (selected !== null && jobs.has(selected)) renderDetail(jobs.get(selected));
    schedulePoll();
  }

  function onJob(job) {
    const before = jobs.get(job.id);
    jobs.set(job.id, job);
    renderJobs();
    if (before && before.status !== "succeeded" && job.status === "succeeded") loadModels();
  }

  function select(id) {
    selected = id;
    renderJobs();
  }

  async function cancel(id) {
    try {
      onJob(await api(`/api/admin/jobs/${id}/cancel`, { method: "POST" }));
      notice(`Job ${id} cancelled.`);
    } catch (e) { notice(`Job ${id}: ${e.message}`); }
  }

  function renderDetail(job) {
    $("job-detail").hidden = false;
    $("job-detail-title").textContent = `Job ${job.id}: ${job.status}`;
    const p = job.params;
    let summary = `${p.datasets.join(", ")}; ${p.epochs} epochs, lr ${p.lr}, batch ${p.batch_size}, seed ${p.seed}` +
      (p.base ? `, fine-tuning ${p.base}` : "");
    if (job.model) summary += `. Model: ${job.model}`;
    if (job.error) summary += `. ${job.error}`;
    $("job-summary").textContent = summary;
    $("job-log").textContent = job.log.join("\n");
    drawChart($("job-chart"), job);
  }

  // The chart: losses on the left scale (0 to their max), accuracies on the right (0 to 1).
  function drawChart(canvas, job) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 36;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#999";
    ctx.strokeRect(pad, 8, w - 2 * pad, h - pad - 8);
    const points = job.progress;
    const epochs = Math.max(job.params.epochs, 1);
    const maxLoss = Math.max(1e-6, ...points.flatMap((p) => [p.train_loss, p.val_loss].filter(Number.isFinite)));
    const x = (epoch) => pad + ((epoch - 1) / Math.max(epochs - 1, 1)) * (w - 2 * pad);
    const y = (v, top) => 8 + (1 - v / top) * (h - pad - 8);
    ctx.fillStyle = "#333";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(maxLoss.toFixed(2), 2, 18);
    ctx.fillText("0", 2, h - pad);
    ctx.fillText("100%", w - pad + 2, 18);
    ctx.fillText(`epoch 1 … ${epochs}`, w / 2 - 30, h - 10);
    const series = [["train_loss", "#b3261e", maxLoss], ["val_loss", "#e8a09a", maxLoss],
      ["train_acc", "#0b57d0", 1], ["val_acc", "#146c2e", 1]];
    for (const [key, colour, top] of series) {
      const pts = points.filter((p) => Number.isFinite(p[key]));
      if (!pts.length) continue;
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.lineWidth = 2;
      ctx.beginPath();
      pts.forEach((p, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(p.epoch), y(p[key], top)));
      ctx.stroke();
      if (pts.length === 1) ctx.fillRect(x(pts[0].epoch) - 2, y(pts[0][key], top) - 2, 4, 4);
    }
  }

  async function loadJobs() {
    const data = await api("/api/admin/jobs");
    jobs.clear();
    data.jobs.forEach((j) => jobs.set(j.id, j));
    renderJobs();
  }

  // Without a live socket, poll while anything is queued or running.
  function schedulePoll() {
    const busy = [...jobs.values()].some((j) => j.status === "queued" || j.status === "running");
    if (busy && !socketLive && !pollTimer) {
      pollTimer = setTimeout(async () => {
        pollTimer = null;
        try { await loadJobs(); } catch (e) { notice(e.message); }
      }, 2000);
    }
  }

  // models
  async function loadModels() {
    const data = await api("/api/admin/models");
    $("active-model").textContent = data.active;
    const body = $("models");
    body.replaceChildren();
    const base = $("base-model");
    const chosen = base.value;
    base.replaceChildren(new Option("a new model", ""));
    for (const m of data.models) {
      const row = body.insertRow();
      cell(row, m.id + (m.job ? ` (job ${m.job})` : ""));
      cell(row, pct(m.metrics.val_acc ?? m.metrics.accuracy));
      cell(row, typeof m.metrics.unseen_signer_acc === "number" ? pct(m.metrics.unseen_signer_acc) : "not measured");
      cell(row, when(m.created_at));
      const actions = row.insertCell();
      if (m.active) actions.textContent = "live";
      else actions.append(button("Activate", () => activate(m.id)));
      base.append(new Option(`fine-tune ${m.id}`, m.id));
    }
    base.value = chosen;
  }

  async function activate(id) {
    try {
      const info = await api(`/api/admin/models/${encodeURIComponent(id)}/activate`, { method: "POST" });
      notice(`${info.model} is live.`);
    } catch (e) { notice(`Not activated: ${e.message}`); }
    await loadModels();
  }

  // data sets
  async function loadDatasets() {
    const data = await api("/api/admin/datasets");
    const body = $("datasets");
    const choices = $("dataset-choices");
    // The first time, the shared sources an API request would default to are ticked (data-defaults).
    const boxes = choices.querySelectorAll("input");
    const checked = new Set(boxes.length ? [...choices.querySelectorAll("input:checked")].map((i) => i.value)
      : choices.dataset.defaults.split(" ").filter(Boolean));
    body.replaceChildren();
    choices.replaceChildren();
    for (const d of data.datasets) {
      const row = body.insertRow();
      cell(row, d.name);
      cell(row, d.kind + (d.available ? "" : " (missing)"));
      cell(row, d.samples ?? "–");
      cell(row, d.classes ? Object.keys(d.classes).join(" ") : "–");
      cell(row, d.signers ? d.signers.join(", ") : "–");
      if (!d.available) continue;
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "datasets";
      box.value = d.name;
      box.checked = checked.has(d.name);
      label.append(box, ` ${d.name}`);
      choices.append(label);
    }
  }

  // the job form
  $("job-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const num = (name) => (form[name].value === "" ? undefined : Number(form[name].value));
    const body = {
      datasets: [...form.querySelectorAll('input[name="datasets"]:checked')].map((i) => i.value),
      epochs: num("epochs"), lr: num("lr"), batch_size: num("batch_size"), base: form.base.value || null,
    };
    if (form.seed.value !== "") body.seed = num("seed");
    $("job-error").textContent = "";
    try {
      const data = await api("/api/admin/jobs", { method: "POST", body });
      onJob(data.job);
      select(data.id);
      notice(`Job ${data.id} queued.`);
    } catch (e) { $("job-error").textContent = e.message; }
  });

  // live progress
  let socketLive = false;
  if (window.io) {
    const socket = window.io("/admin");
    socket.on("connect", () => { socketLive = true; loadJobs().catch((e) => notice(e.message)); });
    socket.on("disconnect", () => { socketLive = false; schedulePoll(); });
    socket.on("connect_error", () => { socketLive = false; schedulePoll(); });
    socket.on("job", onJob);
  }

  Promise.all([loadJobs(), loadModels(), loadDatasets()]).catch((e) => notice(e.message));
})();
