// The live page: frames from the /frames WebSocket onto the canvas (8-byte header: frame index, prompt id, both
// big-endian uint32; then a PNG), prompts to POST /prompt, figures from GET /state.
"use strict";
(() => {
  const HEADER_BYTES = 8;
  const $ = (id) => document.getElementById(id);
  const canvas = $("video");
  const context = canvas.getContext("2d");
  const pageStart = performance.now();
  const prompts = new Map();  // prompt id -> text, as /state reports them
  const arrivals = [];  // arrival times (ms) of the frames of the last two seconds
  // what the page shows, readable by scripts (window.streamdit)
  const shown = { frames: 0, index: -1, promptId: -1, prompt: null, firstFrameMs: null };
  window.streamdit = shown;
  let newest = -1;  // the newest frame index drawn on this connection (a late-decoded older frame is skipped)
  let stateInFlight = false;

  function setMessage(text, isError = false) {
    $("message").textContent = text;
    $("message").classList.toggle("error", isError);
  }

  function showPrompt() {
    if (prompts.has(shown.promptId)) {
      shown.prompt = prompts.get(shown.promptId);
      $("current-prompt").textContent = shown.prompt;
    }
  }

  async function onFrame(buffer) {
    const header = new DataView(buffer, 0, HEADER_BYTES);
    const index = header.getUint32(0), promptId = header.getUint32(4);
    const bitmap = await createImageBitmap(new Blob([buffer.slice(HEADER_BYTES)], { type: "image/png" }));
    if (index <= newest) { bitmap.close(); return; }
    newest = index;
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
    }
    context.drawImage(bitmap, 0, 0);
    bitmap.close();
    const now = performance.now();
    arrivals.push(now);
    while (now - arrivals[0] > 2000) arrivals.shift();
    if (shown.firstFrameMs === null) {
      shown.firstFrameMs = now - pageStart;
      $("waiting").hidden = true;
    }
    shown.frames += 1;
    shown.index = index;
    $("frame").textContent = index;
    if (promptId !== shown.promptId) {
      shown.promptId = promptId;
      if (!prompts.has(promptId)) refreshState();
      showPrompt();
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/frames`);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => { newest = -1; setMessage(""); };
    socket.onmessage = (event) => { onFrame(event.data); };
    socket.onclose = () => {
      setMessage("the stream closed; reconnecting\u2026", true);
      setTimeout(connect, 2000);
    };
  }

  function seconds(s) { return s === null || s === undefined ? "\u2013" : `${s.toFixed(2)} s`; }

  async function refreshState() {
    if (stateInFlight) return;
    stateInFlight = true;
    try {
      const response = await fetch("/state", { cache: "no-store" });
      const state = await response.json();
      for (const [id, text] of Object.entries(state.prompts)) prompts.set(Number(id), text);
      showPrompt();
      const span = arrivals.length > 1 ? (arrivals[arrivals.length - 1] - arrivals[0]) / 1000 : 0;
      $("fps").textContent = span > 0 ? `${((arrivals.length - 1) / span).toFixed(1)} (of ${state.fps})` : "\u2013";
      const page = shown.firstFrameMs === null ? null : shown.firstFrameMs / 1000;
      $("ttff").textContent = `${seconds(page)} (stream: ${seconds(state.time_to_first_frame_s)})`;
      $("latency").textContent = state.chunk_ms_p50 === null ? "\u2013"
        : `${state.chunk_ms_p50.toFixed(0)} / ${state.chunk_ms_p99.toFixed(0)} ms`;
      $("viewers").textContent = state.viewers;
      $("pending").hidden = state.pending === null;
      $("pending-prompt").textContent = state.pending || "";
      if (state.error) setMessage(`stream stopped: ${state.error}`, true);
    } catch (error) {
      // the server is away: the socket's reconnect says so
    } finally {
      stateInFlight = false;
    }
  }

  $("prompt-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const prompt = $("prompt-input").value;
    try {
      const response = await fetch("/prompt", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        setMessage(body.error || `the server answered ${response.status}`, true);
        return;
      }
      setMessage(`"${body.prompt}" from the next chunk after frame ${body.after_frame}`);
      $("pending").hidden = false;
      $("pending-prompt").textContent = body.prompt;
    } catch (error) {
      setMessage(`could not reach the server: ${error}`, true);
    }
  });

  connect();
  refreshState();
  setInterval(refreshState, 1000);
})();
