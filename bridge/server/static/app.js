// dexcom-bridge live page: current reading, chart, live updates over a WebSocket with a
// polling fallback. Everything is served by the bridge itself; no external resources.
"use strict";

(function () {
  const MINUTE = 60 * 1000;
  const HISTORY_MS = 24 * 60 * MINUTE;
  const STALE_MS = 15 * MINUTE;          // older than this: the reading is marked stale
  const DELTA_MAX_GAP_MS = 11 * MINUTE;  // a delta needs a previous reading this close
  const WS_OPEN_TIMEOUT_MS = 5000;       // no hello by then: fall back to polling
  const WS_RETRY_MS = 30000;             // while polling, try the WebSocket again this often
  const params = new URLSearchParams(location.search);
  const POLL_MS = Math.max(1, Number(params.get("poll")) || 10) * 1000;
  const ARROWS = {
    DoubleUp: "\u21C8", SingleUp: "\u2191", FortyFiveUp: "\u2197", Flat: "\u2192",
    FortyFiveDown: "\u2198", SingleDown: "\u2193", DoubleDown: "\u21CA",
    "NOT COMPUTABLE": "?", "RATE OUT OF RANGE": "\u21D5", NONE: "",
  };
  const ERROR_CODES = { 0: "?", 1: "?SN", 2: "?MD", 3: "?NA", 5: "?NC", 6: "?CD", 9: "?AD", 10: "???", 12: "?RF" };

  const state = {
    token: params.get("token") || localStorage.getItem("bridge-token") || "",
    entries: new Map(),
    hours: 3,
    bottom: 80,
    top: 180,
    ws: null,
    pollTimer: null,
    retryTimer: null,
  };
  const $ = (id) => document.getElementById(id);

  class AuthError extends Error {}

  function withAuth(path) {
    if (!state.token) return path;
    return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(state.token);
  }

  async function api(path) {
    const response = await fetch(withAuth(path), { headers: { Accept: "application/json" }, cache: "no-store" });
    if (response.status === 401) throw new AuthError("unauthorized");
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  function merge(list) {
    const cutoff = Date.now() - HISTORY_MS;
    for (const entry of list) {
      if (typeof entry.sgv !== "number" || typeof entry.date !== "number") continue;
      if (entry.type && entry.type !== "sgv") continue;
      state.entries.set(entry.sysTime || String(entry.date), entry);
    }
    for (const [key, entry] of state.entries) if (entry.date < cutoff) state.entries.delete(key);
    render();
  }

  function sorted() {
    return Array.from(state.entries.values()).sort((a, b) => a.date - b.date);
  }

  function rangeClass(sgv) {
    if (sgv < state.bottom) return "low";
    if (sgv > state.top) return "high";
    return "in-range";
  }

  function render() {
    const list = sorted();
    const box = $("current");
    const current = list[list.length - 1];
    if (!current) {
      box.className = "current unknown";
      return renderChart(list);
    }
    const previous = list[list.length - 2];
    const age = Date.now() - current.date;
    const stale = age > STALE_MS;
    box.className = "current " + (current.sgv < 39 ? "unknown" : rangeClass(current.sgv)) + (stale ? " stale" : "");
    $("reading").textContent = current.sgv < 39 ? (ERROR_CODES[current.sgv] || "?") : String(current.sgv);
    const arrow = ARROWS[current.direction] !== undefined ? ARROWS[current.direction] : "";
    $("arrow").textContent = arrow;
    $("arrow").title = current.direction || "";
    if (previous && current.date - previous.date <= DELTA_MAX_GAP_MS && current.sgv >= 39 && previous.sgv >= 39) {
      const delta = current.sgv - previous.sgv;
      $("delta").textContent = (delta >= 0 ? "+" : "\u2212") + Math.abs(delta) + " mg/dl";
    } else {
      $("delta").textContent = "";
    }
    const minutes = Math.max(0, Math.floor(age / MINUTE));
    $("age").textContent = (minutes === 0 ? "just now" : minutes + " min ago") + (stale ? " \u2014 stale" : "");
    renderChart(list);
  }

  function svg(name, attrs, text) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderChart(list) {
    const chart = $("chart");
    // One SVG unit per CSS pixel, so labels and dots keep their size on a phone.
    const W = Math.round(chart.getBoundingClientRect().width) || 600;
    const H = Math.round(Math.min(360, Math.max(220, W * 0.6)));
    chart.setAttribute("viewBox", "0 0 " + W + " " + H);
    const left = 34, right = 6, top = 8, bottom = 22;
    const end = Date.now(), start = end - state.hours * 60 * MINUTE;
    let highest = state.top;
    for (const entry of list) if (entry.date >= start && entry.sgv <= 400) highest = Math.max(highest, entry.sgv);
    const lo = 40, hi = Math.min(400, Math.max(250, Math.ceil((highest + 20) / 50) * 50));
    const x = (t) => left + ((t - start) / (end - start)) * (W - left - right);
    const y = (v) => top + (1 - (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * (H - top - bottom);
    chart.replaceChildren();
    chart.appendChild(svg("rect", { class: "band", x: left, width: W - left - right,
      y: y(state.top), height: y(state.bottom) - y(state.top) }));
    const levels = [state.bottom, state.top];
    for (let v = 100 * Math.ceil((state.top + 40) / 100); v <= hi; v += 100) levels.push(v);
    for (const v of levels) {
      chart.appendChild(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
      chart.appendChild(svg("text", { class: "label", x: 2, y: y(v) + 4 }, String(v)));
    }
    const stepH = state.hours <= 6 ? 1 : state.hours <= 12 ? 2 : 4;
    const first = new Date(start);
    first.setMinutes(0, 0, 0);
    for (let t = first.getTime() + 60 * MINUTE; t <= end; t += 60 * MINUTE) {
      const hour = new Date(t).getHours();
      if (hour % stepH !== 0) continue;
      chart.appendChild(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: top, y2: H - bottom }));
      if (x(t) < left + 12 || x(t) > W - 14) continue;  // a label cut by the edge is noise
      chart.appendChild(svg("text", { class: "label", x: x(t), y: H - 6, "text-anchor": "middle" },
        String(hour).padStart(2, "0") + "h"));
    }
    const radius = state.hours <= 6 ? 3.5 : state.hours <= 12 ? 2.5 : 2;
    for (const entry of list) {
      if (entry.date < start || entry.sgv < 39) continue;
      chart.appendChild(svg("circle", { class: "dot " + rangeClass(entry.sgv), cx: x(entry.date), cy: y(entry.sgv), r: radius }));
    }
  }

  function setTransport(kind, text) {
    const node = $("transport");
    node.className = "transport " + kind;
    node.textContent = text;
    node.dataset.transport = kind;
  }

  async function poll() {
    const latest = sorted().pop();
    const since = Math.max(Date.now() - HISTORY_MS, latest ? latest.date - 15 * MINUTE : 0);
    try {
      merge(await api("/api/v1/entries/sgv.json?count=1000&find[date][$gte]=" + since));
      if (state.pollTimer) setTransport("polling", "live: polling every " + POLL_MS / 1000 + " s (WebSocket unavailable)");
    } catch (err) {
      if (err instanceof AuthError) return askForToken("The access token was refused.");
      setTransport("offline", "offline: " + err.message);
    }
  }

  function startPolling() {
    if (state.pollTimer) return;
    setTransport("polling", "live: polling every " + POLL_MS / 1000 + " s (WebSocket unavailable)");
    state.pollTimer = setInterval(poll, POLL_MS);
    poll();
  }

  function stopPolling() {
    if (state.pollTimer) clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  function connectSocket() {
    if (params.get("ws") === "0") return startPolling();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = withAuth(scheme + "//" + location.host + "/ws");
    let hello = false;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      return startPolling();
    }
    state.ws = ws;
    const timer = setTimeout(() => { if (!hello) ws.close(); }, WS_OPEN_TIMEOUT_MS);
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (err) { return; }
      if (message.type === "hello") {
        hello = true;
        clearTimeout(timer);
        stopPolling();
        setTransport("websocket", "live: WebSocket");
        poll();  // catch up on anything posted while connecting
      } else if (message.type === "entries") {
        merge(message.entries || []);
      } else if (message.type === "error" && message.status === 401) {
        askForToken("The access token was refused.");
      }
    };
    ws.onclose = (event) => {
      clearTimeout(timer);
      state.ws = null;
      if (event.code === 4401) return;
      startPolling();
      clearTimeout(state.retryTimer);
      state.retryTimer = setTimeout(connectSocket, WS_RETRY_MS);
    };
  }

  function askForToken(message) {
    stopPolling();
    if (state.ws) state.ws.close();
    $("token-message").textContent = message;
    $("token-form").hidden = false;
    setTransport("offline", "waiting for an access token");
  }

  async function start() {
    try {
      const auth = await api("/api/v1/verifyauth");
      if (!auth.message || !auth.message.canRead) {
        return askForToken(state.token ? "The access token was refused." : "This site needs an access token to show data.");
      }
      $("token-form").hidden = true;
      try {
        const status = await api("/api/v1/status.json");
        const t = (status.settings && status.settings.thresholds) || {};
        if (typeof t.bgTargetBottom === "number") state.bottom = t.bgTargetBottom;
        if (typeof t.bgTargetTop === "number") state.top = t.bgTargetTop;
      } catch (err) { /* keep the default target range */ }
      merge(await api("/api/v1/entries/sgv.json?count=1000&find[date][$gte]=" + (Date.now() - HISTORY_MS)));
      connectSocket();
    } catch (err) {
      if (err instanceof AuthError) return askForToken("The access token was refused.");
      setTransport("offline", "offline: " + err.message);
      setTimeout(start, POLL_MS);
    }
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token-input").value.trim();
    localStorage.setItem("bridge-token", state.token);
    start();
  });
  for (const button of document.querySelectorAll(".ranges button")) {
    button.addEventListener("click", () => {
      state.hours = Number(button.dataset.hours);
      for (const other of document.querySelectorAll(".ranges button")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      render();
    });
  }
  setInterval(render, 15000);  // ages and the chart's time axis move on
  window.addEventListener("resize", render);
  render();
  start();
})();
