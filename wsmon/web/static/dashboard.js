// wsmon dashboard: polls /api/targets every 2 s and renders it; admins can change targets.
//
// Everything from the API goes into the DOM through textContent or attributes set one by
// one (never innerHTML): target names, errors and labels are data, not markup. URLs come
// from the API already redacted. No inline script or style (the page's CSP forbids them).
"use strict";

(() => {
  const POLL_MS = 2000;
  const REQUEST_TIMEOUT_MS = 5000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SPARK_W = 96;
  const SPARK_H = 28;
  const SUMMARY_KEYS = ["total", "connected", "connecting", "disconnected", "up", "down", "paused"];
  const STATUS_TEXT = {
    connected: "connected",
    connecting: "connecting",
    disconnected: "disconnected",
    up: "up",
    down: "down",
    pending: "pending",
    paused: "paused",
  };

  const $ = (id) => document.getElementById(id);

  let session = null; // {user, role, csrf_token} from api/session
  let sessionStale = true; // refetch before the next request: wsmon's CSRF token changes per process
  let timer = null;
  let running = false;
  let rerun = false;
  let unreachableSince = null;
  let leaving = false; // on the way to the login page
  const rows = new Map(); // target name → its <tr>
  const knownModules = new Set(["ping", "connect"]);

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // --- talking to wsmon ---------------------------------------------------------------

  function request(method, path, { body, csrf } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (typeof AbortSignal !== "undefined" && AbortSignal.timeout) {
      init.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS); // a hung wsmon must not stop the polling
    }
    return fetch(path, init);
  }

  async function errorText(response) {
    let text = "";
    try {
      text = await response.text();
      const parsed = JSON.parse(text);
      if (parsed && typeof parsed.error === "string") text = parsed.error;
    } catch (_) {
      // not JSON: keep the text as it is
    }
    text = String(text).trim();
    if (text.length > 500) text = text.slice(0, 500) + "…";
    return text || `HTTP ${response.status}`;
  }

  async function loadSession() {
    const response = await request("GET", "api/session");
    if (!response.ok) throw new HttpError(response.status, await errorText(response));
    session = await response.json();
    sessionStale = false;
    applyRole();
  }

  // A state-changing request, with the CSRF token; a refused token (wsmon restarted since
  // the page read it) is refreshed once and the request sent again.
  async function change(method, path, body) {
    if (session === null || sessionStale) await loadSession();
    let response = await request(method, path, { body, csrf: session.csrf_token });
    if (response.status === 403) {
      const text = await errorText(response);
      if (!/csrf/i.test(text)) return { ok: false, status: 403, error: text };
      await loadSession();
      response = await request(method, path, { body, csrf: session.csrf_token });
    }
    if (!response.ok) return { ok: false, status: response.status, error: await errorText(response) };
    return { ok: true, status: response.status, data: await response.json() };
  }

  // --- polling ------------------------------------------------------------------------

  function schedule(delay) {
    if (leaving) return;
    clearTimeout(timer);
    timer = setTimeout(tick, delay);
  }

  function refreshNow() {
    if (running) rerun = true;
    else schedule(0);
  }

  async function tick() {
    if (running) {
      rerun = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    try {
      if (sessionStale) await loadSession();
      const response = await request("GET", "api/targets");
      if (!response.ok) throw new HttpError(response.status, await errorText(response));
      render(await response.json());
      unreachableSince = null;
      setBanner(null);
    } catch (error) {
      pollFailed(error);
    } finally {
      running = false;
      if (rerun) {
        rerun = false;
        schedule(0);
      } else {
        schedule(POLL_MS);
      }
    }
  }

  function pollFailed(error) {
    sessionStale = true; // whatever happened, the next success starts with a fresh session
    if (error instanceof HttpError && error.status === 401) {
      toLogin("#ended"); // the session expired, was ended, or wsmon restarted
    } else if (error instanceof HttpError && error.status === 429) {
      setBanner("Too many failed logins from this address: " + error.message + ". Retrying…");
    } else if (error instanceof HttpError && error.status !== 502 && error.status < 503) {
      setBanner("wsmon answered: " + error.message + ". Retrying…");
    } else {
      if (unreachableSince === null) unreachableSince = new Date();
      setBanner("wsmon unreachable, retrying… (since " + clock(unreachableSince) + ")");
    }
    document.body.classList.add("stale");
  }

  // --- logging in and out ---------------------------------------------------------------

  function toLogin(hash) {
    leaving = true; // no more polls
    clearTimeout(timer);
    window.location.replace("login" + hash);
  }

  async function onLogout() {
    $("logout").disabled = true;
    try {
      await request("POST", "logout");
    } catch (_) {
      // unreachable: the login page says so when it does not load
    }
    toLogin("");
  }

  function setBanner(text) {
    const banner = $("banner");
    if (text === null) {
      if (!banner.hidden) banner.hidden = true;
      banner.textContent = "";
      document.body.classList.remove("stale");
      return;
    }
    if (banner.textContent !== text) banner.textContent = text;
    banner.hidden = false;
  }

  // --- rendering ----------------------------------------------------------------------

  function applyRole() {
    const admin = isAdmin();
    $("who").textContent = session ? `${session.user} (${session.role})` : "Not signed in";
    document.body.classList.toggle("viewer", !admin);
    $("add-section").hidden = !admin;
    const base = session && typeof session.base_url === "string" ? session.base_url : null;
    $("add-endpoint-help").hidden = base === null;
    $("add-base-url").textContent = base ?? "";
    $("viewer-note").hidden = admin || session === null;
    for (const button of document.querySelectorAll("#rows button")) {
      button.disabled = !admin || button.dataset.busy === "1" || button.dataset.off === "1";
    }
  }

  function isAdmin() {
    return session !== null && session.role === "admin";
  }

  function render(data) {
    const now = typeof data.updated_at === "number" ? data.updated_at : Date.now() / 1000;
    const updated = $("updated");
    updated.textContent = clock(new Date(now * 1000));
    updated.dateTime = new Date(now * 1000).toISOString();

    const summary = data.summary || {};
    for (const key of SUMMARY_KEYS) {
      const cell = $("sum-" + key);
      const value = String(Number(summary[key]) || 0);
      if (cell.textContent !== value) cell.textContent = value;
      cell.dataset.count = value;
    }

    const targets = Array.isArray(data.targets) ? data.targets : [];
    const tbody = $("rows");
    const seen = new Set();
    let previous = null;
    for (const target of targets) {
      const name = String(target.name);
      seen.add(name);
      let row = rows.get(name);
      if (row === undefined) {
        row = createRow(name);
        rows.set(name, row);
      }
      updateRow(row, target, now);
      const expected = previous === null ? tbody.firstElementChild : previous.nextElementSibling;
      if (expected !== row) tbody.insertBefore(row, expected); // keeps the API's order
      previous = row;
      if (target.module) knownModules.add(String(target.module));
    }
    for (const [name, row] of rows) {
      if (!seen.has(name)) {
        row.remove();
        rows.delete(name);
      }
    }
    let empty = tbody.querySelector("tr.empty");
    if (targets.length === 0) {
      if (empty === null) {
        empty = document.createElement("tr");
        empty.className = "empty";
        const cell = document.createElement("td");
        cell.colSpan = 10;
        empty.append(cell);
        tbody.append(empty);
      }
      empty.firstElementChild.textContent = "No targets yet.";
    } else if (empty !== null) {
      empty.remove();
    }
    updateModuleList();
  }

  function cell(row, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    row.append(td);
    return td;
  }

  function createRow(name) {
    const row = document.createElement("tr");
    row.dataset.name = name;

    const nameCell = cell(row, "name");
    const nameText = document.createElement("span");
    nameText.className = "name-text";
    nameText.textContent = name;
    const badge = document.createElement("span");
    badge.className = "badge runtime";
    badge.textContent = "added at runtime";
    badge.title = "Added from the dashboard; kept in wsmon's state file across restarts";
    badge.hidden = true;
    nameCell.append(nameText, badge);

    cell(row, "url");
    const modeCell = cell(row, "mode");
    const modeName = document.createElement("span");
    modeName.className = "mode-name";
    const moduleName = document.createElement("span");
    moduleName.className = "module-name";
    modeCell.append(modeName, moduleName);
    const statusCell = cell(row, "status-cell");
    const status = document.createElement("span");
    status.className = "status";
    statusCell.append(status);
    cell(row, "num latency");
    cell(row, "num quantiles");
    const historyCell = cell(row, "history");
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", String(SPARK_W));
    svg.setAttribute("height", String(SPARK_H));
    svg.setAttribute("viewBox", `0 0 ${SPARK_W} ${SPARK_H}`);
    svg.setAttribute("role", "img");
    historyCell.append(svg);
    cell(row, "auto");
    const errorCell = cell(row, "error-cell");
    const reason = document.createElement("span");
    reason.className = "error-reason";
    const message = document.createElement("span");
    message.className = "error-message";
    const at = document.createElement("time");
    at.className = "error-at";
    const none = document.createElement("span");
    none.className = "none";
    none.textContent = "none";
    errorCell.append(reason, message, at, none);

    const actions = cell(row, "actions admin-only");
    actions.append(
      actionButton("pause", name),
      actionButton("reconnect", name),
      actionButton("remove", name),
    );
    return row;
  }

  function actionButton(kind, name) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "action-" + kind + (kind === "remove" ? " danger" : "");
    button.dataset.action = kind;
    button.textContent = kind === "remove" ? "Remove" : kind === "pause" ? "Pause" : "Reconnect";
    button.setAttribute("aria-label", `${button.textContent} ${name}`);
    button.disabled = !isAdmin();
    button.addEventListener("click", () => onAction(kind, name, button));
    return button;
  }

  function setText(element, text) {
    if (element.textContent !== text) element.textContent = text;
  }

  function updateRow(row, t, now) {
    const persistent = t.mode === "persistent";
    const statusName = Object.hasOwn(STATUS_TEXT, t.status) ? t.status : "pending";
    row.dataset.status = statusName;
    row.dataset.mode = persistent ? "persistent" : "probe";
    const [nameCell, urlCell, modeCell, statusCell, latencyCell, quantileCell, historyCell, autoCell, errorCell] =
      row.children;

    const badge = nameCell.querySelector(".runtime");
    badge.hidden = !t.runtime;
    row.classList.toggle("runtime", Boolean(t.runtime));

    setText(urlCell, String(t.url ?? ""));
    setText(modeCell.firstElementChild, String(t.mode));
    setText(modeCell.lastElementChild, t.module ? `module ${t.module}` : "");

    const status = statusCell.firstElementChild;
    status.className = "status status-" + statusName;
    setText(status, STATUS_TEXT[statusName]);
    if (persistent && t.reconnects > 0) status.title = `${t.reconnects} reconnect${t.reconnects === 1 ? "" : "s"}`;
    else status.removeAttribute("title");

    // The last RTT of a connection that is gone is history, not the current latency.
    const live = statusName === "connected" || statusName === "up";
    setText(latencyCell, live ? ms(t.latency_ms) : "—");
    if (!live && typeof t.latency_ms === "number") latencyCell.title = `last: ${ms(t.latency_ms)}`;
    else latencyCell.removeAttribute("title");
    setText(quantileCell, `${ms(t.p50_ms, false)} / ${ms(t.p99_ms)}`);
    sparkline(historyCell.firstElementChild, t.history_ms, t.name);
    setText(autoCell, persistent ? (t.auto_reconnect ? "on" : "off") : "—");

    const [reason, message, at, none] = errorCell.children;
    const error = t.last_error;
    if (error) {
      setText(reason, String(error.reason));
      setText(message, String(error.message ?? ""));
      const when = new Date(Number(error.at) * 1000);
      setText(at, `${clock(when)} (${ago(now - Number(error.at))})`);
      at.dateTime = when.toISOString();
      at.title = when.toString();
    } else {
      for (const el of [reason, message, at]) setText(el, "");
    }
    reason.hidden = message.hidden = at.hidden = !error;
    none.hidden = Boolean(error);

    const admin = isAdmin();
    const [pause, reconnect, remove] = row.querySelectorAll("button");
    const pauseText = persistent ? "Disconnect" : "Pause";
    setText(pause, pauseText);
    pause.setAttribute("aria-label", `${pauseText} ${t.name}`);
    pause.title = persistent ? "Close the connection and keep it closed" : "Stop probing this target";
    pause.dataset.off = t.paused ? "1" : "0";
    const reconnectText = t.paused ? "Resume" : persistent ? "Reconnect" : "Resume";
    setText(reconnect, reconnectText);
    reconnect.setAttribute("aria-label", `${reconnectText} ${t.name}`);
    reconnect.title = t.paused ? "Start again" : persistent ? "Reconnect now, skipping the backoff" : "";
    reconnect.dataset.off = !t.paused && !persistent ? "1" : "0";
    for (const button of [pause, reconnect, remove]) {
      button.disabled = !admin || button.dataset.busy === "1" || button.dataset.off === "1";
    }
  }

  function sparkline(svg, history, name) {
    const values = (Array.isArray(history) ? history : []).filter((v) => typeof v === "number" && isFinite(v));
    while (svg.firstChild) svg.firstChild.remove();
    const title = document.createElementNS(SVG_NS, "title");
    svg.append(title);
    if (values.length === 0) {
      title.textContent = "no latency samples yet";
      svg.setAttribute("aria-label", `${name}: no latency samples yet`);
      const line = document.createElementNS(SVG_NS, "line");
      line.setAttribute("x1", "2");
      line.setAttribute("x2", String(SPARK_W - 2));
      line.setAttribute("y1", String(SPARK_H / 2));
      line.setAttribute("y2", String(SPARK_H / 2));
      line.setAttribute("stroke", "#c5cad3");
      line.setAttribute("stroke-dasharray", "3 3");
      svg.append(line);
      return;
    }
    const min = Math.min(...values);
    const max = Math.max(...values);
    const span = max - min || 1;
    const pad = 3;
    const step = values.length > 1 ? (SPARK_W - 2 * pad) / (values.length - 1) : 0;
    const points = values.map((v, i) => {
      const x = values.length > 1 ? pad + i * step : SPARK_W / 2;
      const y = max === min ? SPARK_H / 2 : SPARK_H - pad - ((v - min) / span) * (SPARK_H - 2 * pad);
      return [x, y];
    });
    const description = `latency of the last ${values.length} sample${values.length === 1 ? "" : "s"}: ` +
      `min ${ms(min)}, max ${ms(max)}, last ${ms(values[values.length - 1])}`;
    title.textContent = description;
    svg.setAttribute("aria-label", `${name}: ${description}`);
    if (points.length > 1) {
      const line = document.createElementNS(SVG_NS, "polyline");
      line.setAttribute("points", points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "));
      svg.append(line);
    }
    const [lx, ly] = points[points.length - 1];
    const dot = document.createElementNS(SVG_NS, "circle");
    dot.setAttribute("class", "spark-last");
    dot.setAttribute("cx", lx.toFixed(1));
    dot.setAttribute("cy", ly.toFixed(1));
    dot.setAttribute("r", "2");
    svg.append(dot);
  }

  function updateModuleList() {
    const list = $("module-names");
    const present = new Set(Array.from(list.options, (o) => o.value));
    for (const name of [...knownModules].sort()) {
      if (!present.has(name)) {
        const option = document.createElement("option");
        option.value = name;
        list.append(option);
      }
    }
  }

  // --- formatting ---------------------------------------------------------------------

  function ms(value, unit = true) {
    if (typeof value !== "number" || !isFinite(value)) return "—";
    const digits = value < 1 ? 2 : value < 100 ? 1 : 0;
    return value.toFixed(digits) + (unit ? " ms" : "");
  }

  function pad2(n) {
    return String(n).padStart(2, "0");
  }

  function clock(date) {
    const time = `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
    const today = new Date();
    if (date.toDateString() === today.toDateString()) return time;
    return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())} ${time}`;
  }

  function ago(seconds) {
    if (!isFinite(seconds) || seconds < 1) return "just now";
    if (seconds < 90) return `${Math.round(seconds)} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  // --- actions ------------------------------------------------------------------------

  function showActionMessage(text, ok) {
    const element = $("action-message");
    element.textContent = text;
    element.classList.toggle("ok", Boolean(ok));
    element.hidden = false;
  }

  async function onAction(kind, name, button) {
    if (!isAdmin()) return;
    if (kind === "remove") {
      const sure = window.confirm(
        `Remove target "${name}"?\n\nwsmon stops monitoring it, and the removal is kept across restarts.`,
      );
      if (!sure) return;
    }
    const path = `api/targets/${encodeURIComponent(name)}` + (kind === "remove" ? "" : `/${kind}`);
    button.dataset.busy = "1";
    button.disabled = true;
    try {
      const result = await change(kind === "remove" ? "DELETE" : "POST", path);
      if (result.ok) {
        const done = { pause: "paused", reconnect: "reconnecting", remove: "removed" }[kind];
        showActionMessage(`${name}: ${done}.`, true);
      } else {
        showActionMessage(`${name}: ${kind} failed: ${result.error}`, false);
      }
    } catch (error) {
      sessionStale = true;
      showActionMessage(`${name}: ${kind} failed: wsmon unreachable (${error.message}). Try again.`, false);
    } finally {
      button.dataset.busy = "0";
      button.disabled = !isAdmin() || button.dataset.off === "1";
      refreshNow();
    }
  }

  async function onAdd(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const errorBox = $("add-error");
    const okBox = $("add-ok");
    errorBox.hidden = true;
    okBox.hidden = true;
    const value = (id) => $(id).value.trim();
    const body = {
      name: value("add-name"),
      url: value("add-url"),
      mode: value("add-mode"),
      module: value("add-module") || "ping",
    };
    if (session && session.base_url && body.url && !body.url.includes("://")) {
      body.endpoint = body.url; // an endpoint name, appended to [web] base_url by wsmon
      delete body.url;
      if (!body.name) delete body.name;
    }
    if (value("add-interval")) body.interval = value("add-interval");
    const submit = $("add-submit");
    submit.disabled = true;
    try {
      const result = await change("POST", "api/targets", body);
      if (result.ok) {
        form.reset(); // the URL may hold a token: do not keep it in the form
        okBox.textContent = `Added ${result.data && result.data.name ? result.data.name : body.name}.`;
        okBox.hidden = false;
        refreshNow();
      } else {
        errorBox.textContent = result.error;
        errorBox.hidden = false;
      }
    } catch (error) {
      sessionStale = true;
      errorBox.textContent = `wsmon unreachable (${error.message}): try again.`;
      errorBox.hidden = false;
    } finally {
      submit.disabled = false;
    }
  }

  function start() {
    $("add-form").addEventListener("submit", onAdd);
    $("logout").addEventListener("click", onLogout);
    $("add-form").addEventListener("input", () => {
      $("add-ok").hidden = true; // the last "Added …" is old news once the next one is typed
    });
    tick();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
