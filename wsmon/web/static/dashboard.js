// wsmon dashboard, built for fleets: the summary first (counts, fleet latency, what is broken
// the longest), then one page of targets, problems first, searched and filtered on the server;
// a click on a target opens its detail (last errors, latency over the window, actions). Every
// 2 s it asks again with If-None-Match: what has not changed costs wsmon (and the page) ~nothing.
// Search, status filter, sort, page and the open target are kept in the page's URL, so a link
// shows the same view (/dashboard?status=disconnected&q=eu).
//
// Everything from the API goes into the DOM through textContent or attributes set one by
// one (never innerHTML): target names, errors and labels are data, not markup. URLs come
// from the API already redacted. No inline script or style (the page's CSP forbids them).
"use strict";

(() => {
  const POLL_MS = 2000;
  const REQUEST_TIMEOUT_MS = 5000;
  const SEARCH_DELAY_MS = 250;
  const PAGE_SIZE = 50;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ROW_SPARK = { width: 96, height: 28 };
  const DETAIL_SPARK = { width: 400, height: 90 };
  const STATUSES = ["connected", "connecting", "disconnected", "up", "down", "pending", "paused"];
  const COUNT_KEYS = ["total", ...STATUSES];
  const FILTERS = [
    ["", "All", "total"],
    ["problems", "Problems", "problems"],
    ...STATUSES.map((s) => [s, s[0].toUpperCase() + s.slice(1), s]),
  ];
  const SORTS = ["problems", "name", "latency"];
  const LIVE = new Set(["connected", "up"]);

  const $ = (id) => document.getElementById(id);

  let session = null; // {user, role, csrf_token} from api/session
  let sessionStale = true; // refetch before the next request: wsmon's CSRF token changes per process
  let timer = null;
  let running = false;
  let rerun = false;
  let unreachableSince = null;
  let view = readLocation(); // what is shown: {q, status, sort, page, target}
  let lastVersion = null; // the Store version of the last summary: "changed since" asks from there
  let lastPage = null; // the last page's answer (pager, clamping)
  let lastStatuses = new Map(); // name → status on the previous render: changed rows are marked
  let searchTimer = null;
  let leaving = false; // on the way to the login page
  const rows = new Map(); // target name → its <tr>
  const answers = new Map(); // "summary" | "page" | "detail" → {path, etag, data}
  const knownModules = new Set(["ping", "connect"]);

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // --- the view in the URL --------------------------------------------------------------

  function readLocation() {
    const params = new URLSearchParams(window.location.search);
    const sort = params.get("sort");
    const page = Number.parseInt(params.get("page") || "1", 10);
    return {
      q: params.get("q") || "",
      status: (params.get("status") || "").toLowerCase(),
      sort: SORTS.includes(sort) ? sort : "problems",
      page: Number.isFinite(page) && page > 0 ? page : 1,
      target: params.get("target") || "",
    };
  }

  function writeLocation(push) {
    const params = new URLSearchParams();
    if (view.status) params.set("status", view.status);
    if (view.q) params.set("q", view.q);
    if (view.sort !== "problems") params.set("sort", view.sort);
    if (view.page > 1) params.set("page", String(view.page));
    if (view.target) params.set("target", view.target);
    const query = params.toString();
    const url = window.location.pathname + (query ? "?" + query : "");
    if (url === window.location.pathname + window.location.search) return;
    if (push) window.history.pushState(null, "", url);
    else window.history.replaceState(null, "", url);
  }

  function changeView(change, push = true) {
    view = { ...view, ...change };
    writeLocation(push);
    showControls();
    refreshNow();
  }

  function pagePath() {
    const params = new URLSearchParams();
    if (view.q.trim()) params.set("q", view.q.trim());
    if (view.status) params.set("status", view.status);
    params.set("sort", view.sort);
    params.set("limit", String(PAGE_SIZE));
    params.set("offset", String((view.page - 1) * PAGE_SIZE));
    return "api/targets?" + params.toString();
  }

  // --- talking to wsmon ---------------------------------------------------------------

  function request(method, path, { body, csrf, etag } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (csrf) headers["X-CSRF-Token"] = csrf;
    if (etag) headers["If-None-Match"] = etag;
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (typeof AbortSignal !== "undefined" && AbortSignal.timeout) {
      init.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS); // a hung wsmon must not stop the polling
    }
    return fetch(path, init);
  }

  // GET with If-None-Match: {data, fresh}; a 304 gives the data kept from the last answer.
  async function getJSON(kind, path) {
    const known = answers.get(kind);
    const etag = known && known.path === path ? known.etag : null;
    const response = await request("GET", path, { etag });
    if (response.status === 304 && etag) return { data: known.data, fresh: false };
    if (!response.ok) throw new HttpError(response.status, await errorText(response));
    const data = await response.json();
    answers.set(kind, { path, etag: response.headers.get("ETag"), data });
    return { data, fresh: true };
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
      const since = lastVersion === null ? "" : `?since=${lastVersion}`;
      const [summary, page, detail] = await Promise.all([
        getJSON("summary", "api/summary" + since),
        loadPage(),
        view.target ? loadDetail(view.target) : null,
      ]);
      const now = page && typeof page.data.updated_at === "number" ? page.data.updated_at : Date.now() / 1000;
      showUpdated();
      renderSummary(summary.data, summary.fresh, now);
      if (page) renderPage(page.data, now);
      if (detail) renderDetail(detail, now);
      else hideDetail();
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

  // The page of targets; a bad filter (a hand-written link) is said next to the filters.
  async function loadPage() {
    try {
      const answer = await getJSON("page", pagePath());
      $("filter-error").hidden = true;
      return answer;
    } catch (error) {
      if (!(error instanceof HttpError) || error.status !== 400) throw error;
      $("filter-error").textContent = `This view cannot be shown: ${error.message}`;
      $("filter-error").hidden = false;
      renderRows([], Date.now() / 1000);
      setText($("range"), "");
      return null;
    }
  }

  async function loadDetail(name) {
    try {
      return (await getJSON("detail", `api/targets/${encodeURIComponent(name)}`)).data;
    } catch (error) {
      if (!(error instanceof HttpError) || error.status !== 404) throw error;
      return { name, missing: error.message };
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

  function showUpdated() {
    const when = new Date();
    const updated = $("updated");
    setText(updated, clock(when));
    updated.dateTime = when.toISOString();
  }

  // --- rendering: summary ---------------------------------------------------------------

  function applyRole() {
    const admin = isAdmin();
    $("who").textContent = session ? `${session.user} (${session.role})` : "Not signed in";
    document.body.classList.toggle("viewer", !admin);
    $("add-section").hidden = !admin;
    const base = session && typeof session.base_url === "string" ? session.base_url : null;
    $("add-endpoint-help").hidden = base === null;
    $("add-base-url").textContent = base ?? "";
    $("viewer-note").hidden = admin || session === null;
    for (const button of document.querySelectorAll("#rows button.action, #detail-actions button")) {
      button.disabled = !admin || button.dataset.busy === "1" || button.dataset.off === "1";
    }
  }

  function isAdmin() {
    return session !== null && session.role === "admin";
  }

  function count(value) {
    return Number(value) || 0;
  }

  function renderSummary(data, fresh, now) {
    const counts = data.counts || {};
    const values = { ...counts, problems: data.problems };
    for (const key of [...COUNT_KEYS, "problems"]) {
      const cell = $("sum-" + key);
      const value = count(values[key]).toLocaleString("en");
      setText(cell, value);
      cell.dataset.count = String(count(values[key]));
    }
    for (const chip of $("chips").children) {
      setText(chip.querySelector(".chip-count"), count(values[chip.dataset.count]).toLocaleString("en"));
    }
    const latency = data.latency || {};
    setText($("fleet-p50"), ms(latency.p50_ms));
    setText($("fleet-p99"), ms(latency.p99_ms));
    $("fleet-p50").title = `latest round trip of ${count(latency.targets)} working targets`;

    if (fresh && typeof data.version === "number") {
      if (lastVersion !== null && typeof data.changed === "number" && data.changed > 0) {
        const many = data.changed === 1 ? "target changed" : "targets changed";
        $("changes").textContent = `${data.changed.toLocaleString("en")} ${many} at ${clock(new Date())}`;
        $("changes").hidden = false;
      } else if (lastVersion !== null && data.changed === null) {
        $("changes").textContent = `Many targets changed at ${clock(new Date())}`;
        $("changes").hidden = false;
      }
      lastVersion = data.version;
    }

    renderList($("worst"), Array.isArray(data.worst) ? data.worst : [], "Nothing is broken.", (item, o) => {
      const status = statusBadge(o.status);
      const what = document.createElement("span");
      what.className = "offender-what";
      const error = o.last_error;
      what.textContent = error ? `${error.reason}: ${error.message}` : "";
      const since = document.createElement("span");
      since.className = "offender-since";
      since.textContent = `for ${duration(now - Number(o.since))}`;
      item.append(targetLink(o.name), " ", status, " ", since, what);
    });
  }

  function renderList(list, items, emptyText, fill) {
    const replacement = document.createDocumentFragment();
    if (items.length === 0) {
      const item = document.createElement("li");
      item.className = "none";
      item.textContent = emptyText;
      replacement.append(item);
    }
    for (const o of items) {
      const item = document.createElement("li");
      fill(item, o);
      replacement.append(item);
    }
    list.replaceChildren(replacement);
  }

  function targetLink(name) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link target-link";
    button.textContent = String(name);
    button.addEventListener("click", () => openDetail(String(name)));
    return button;
  }

  function statusOf(value) {
    return STATUSES.includes(value) ? value : "pending";
  }

  function statusBadge(value) {
    const status = document.createElement("span");
    const name = statusOf(value);
    status.className = "status status-" + name;
    status.textContent = name;
    return status;
  }

  // --- rendering: the page of targets -----------------------------------------------------

  function renderPage(data, now) {
    lastPage = data;
    const matched = count(data.matched);
    const offset = count(data.offset);
    const lastPageNumber = Math.max(1, Math.ceil(matched / PAGE_SIZE));
    if (matched > 0 && offset >= matched && view.page > lastPageNumber) {
      changeView({ page: lastPageNumber }, false); // the fleet shrank under this page
      return;
    }
    const targets = Array.isArray(data.targets) ? data.targets : [];
    renderRows(targets, now);
    const total = count(data.total);
    const filtered = view.q.trim() || view.status;
    let range = matched === 0 ? "No targets" : `${(offset + 1).toLocaleString("en")}–${(offset + targets.length).toLocaleString("en")} of ${matched.toLocaleString("en")}`;
    if (filtered) range += ` (of ${total.toLocaleString("en")} in all)`;
    setText($("range"), range);
    $("first-page").disabled = $("prev-page").disabled = view.page <= 1;
    $("next-page").disabled = $("last-page").disabled = view.page >= lastPageNumber;
  }

  function renderRows(targets, now) {
    const tbody = $("rows");
    const seen = new Set();
    const statuses = new Map();
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
      const status = statusOf(target.status);
      statuses.set(name, status);
      const before = lastStatuses.get(name);
      row.classList.toggle("changed", before !== undefined && before !== status);
      const expected = previous === null ? tbody.firstElementChild : previous.nextElementSibling;
      if (expected !== row) tbody.insertBefore(row, expected); // keeps the API's order
      previous = row;
      if (target.module) knownModules.add(String(target.module));
    }
    lastStatuses = statuses;
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
        const td = document.createElement("td");
        td.colSpan = 10;
        empty.append(td);
        tbody.append(empty);
      }
      const filtered = view.q.trim() || view.status;
      empty.firstElementChild.textContent = filtered ? "No target matches this search." : "No targets yet.";
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
    row.addEventListener("click", (event) => {
      if (event.target.closest("button, a, input, select")) return;
      openDetail(name);
    });

    const nameCell = cell(row, "name");
    const nameButton = document.createElement("button");
    nameButton.type = "button";
    nameButton.className = "link name-text";
    nameButton.textContent = name;
    nameButton.title = "Show the details of this target";
    nameButton.addEventListener("click", () => openDetail(name));
    const labels = document.createElement("span");
    labels.className = "labels";
    const badge = document.createElement("span");
    badge.className = "badge runtime";
    badge.textContent = "added at runtime";
    badge.title = "Added from the dashboard; kept in wsmon's state file across restarts";
    badge.hidden = true;
    nameCell.append(nameButton, labels, badge);

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
    const since = document.createElement("span");
    since.className = "since";
    statusCell.append(status, since);
    cell(row, "num latency");
    cell(row, "num quantiles");
    cell(row, "history").append(sparkSvg(ROW_SPARK));
    cell(row, "auto");
    const none = document.createElement("span");
    none.className = "none";
    none.textContent = "none";
    cell(row, "error-cell").append(...errorElements(), none);
    cell(row, "actions admin-only").append(...actionButtons(name));
    return row;
  }

  function actionButtons(name) {
    return ["pause", "reconnect", "remove"].map((kind) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "action action-" + kind + (kind === "remove" ? " danger" : "");
      button.dataset.action = kind;
      button.textContent = kind === "remove" ? "Remove" : kind === "pause" ? "Pause" : "Reconnect";
      button.setAttribute("aria-label", `${button.textContent} ${name}`);
      button.disabled = !isAdmin();
      button.addEventListener("click", () => onAction(kind, name, button));
      return button;
    });
  }

  function updateActions([pause, reconnect, remove], t) {
    const persistent = t.mode === "persistent";
    const pauseText = persistent ? "Disconnect" : "Pause";
    setText(pause, pauseText);
    pause.setAttribute("aria-label", `${pauseText} ${t.name}`);
    pause.title = persistent ? "Close the connection and keep it closed" : "Stop probing this target";
    pause.dataset.off = t.paused ? "1" : "0";
    const reconnectText = t.paused || !persistent ? "Resume" : "Reconnect";
    setText(reconnect, reconnectText);
    reconnect.setAttribute("aria-label", `${reconnectText} ${t.name}`);
    reconnect.title = t.paused ? "Start again" : persistent ? "Reconnect now, skipping the backoff" : "";
    reconnect.dataset.off = !t.paused && !persistent ? "1" : "0";
    const admin = isAdmin();
    for (const button of [pause, reconnect, remove]) {
      button.disabled = !admin || button.dataset.busy === "1" || button.dataset.off === "1";
    }
  }

  function setText(element, text) {
    if (element.textContent !== text) element.textContent = text;
  }

  function labelText(labels) {
    if (!labels || typeof labels !== "object") return "";
    return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(" ");
  }

  function updateRow(row, t, now) {
    const persistent = t.mode === "persistent";
    const statusName = statusOf(t.status);
    row.dataset.status = statusName;
    row.dataset.mode = persistent ? "persistent" : "probe";
    row.classList.toggle("selected", view.target === String(t.name));
    const [nameCell, urlCell, modeCell, statusCell, latencyCell, quantileCell, historyCell, autoCell, errorCell] =
      row.children;

    setText(nameCell.querySelector(".labels"), labelText(t.labels));
    nameCell.querySelector(".runtime").hidden = !t.runtime;
    row.classList.toggle("runtime", Boolean(t.runtime));

    setText(urlCell, String(t.url ?? ""));
    setText(modeCell.firstElementChild, String(t.mode));
    setText(modeCell.lastElementChild, t.module ? `module ${t.module}` : "");

    const [status, since] = statusCell.children;
    status.className = "status status-" + statusName;
    setText(status, statusName);
    if (persistent && t.reconnects > 0) status.title = `${t.reconnects} reconnect${t.reconnects === 1 ? "" : "s"}`;
    else status.removeAttribute("title");
    setText(since, typeof t.since === "number" ? `for ${duration(now - t.since)}` : "");

    // The last RTT of a connection that is gone is history, not the current latency.
    const live = LIVE.has(statusName);
    setText(latencyCell, live ? ms(t.latency_ms) : "—");
    if (!live && typeof t.latency_ms === "number") latencyCell.title = `last: ${ms(t.latency_ms)}`;
    else latencyCell.removeAttribute("title");
    setText(quantileCell, `${ms(t.p50_ms, false)} / ${ms(t.p99_ms)}`);
    sparkline(historyCell.firstElementChild, t.history_ms, String(t.name), ROW_SPARK);
    setText(autoCell, persistent ? (t.auto_reconnect ? "on" : "off") : "—");

    const [reason, message, at, none] = errorCell.children;
    showError(t.last_error, reason, message, at, now);
    none.hidden = Boolean(t.last_error);
    updateActions(row.querySelectorAll("button.action"), t);
  }

  // An error's reason, message and time, to be filled by showError.
  function errorElements() {
    const reason = document.createElement("span");
    reason.className = "error-reason";
    const message = document.createElement("span");
    message.className = "error-message";
    const at = document.createElement("time");
    at.className = "error-at";
    return [reason, message, at];
  }

  function showError(error, reason, message, at, now) {
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
  }

  // --- the detail of one target -------------------------------------------------------------

  function openDetail(name) {
    if (view.target === name) return;
    answers.delete("detail");
    changeView({ target: name });
  }

  function hideDetail() {
    $("detail").hidden = true;
    document.body.classList.remove("with-detail");
  }

  function closeDetail() {
    if (!view.target) return;
    const name = view.target;
    answers.delete("detail");
    hideDetail();
    changeView({ target: "" });
    const row = rows.get(name);
    if (row) row.querySelector(".name-text").focus();
  }

  function renderDetail(t, now) {
    const panel = $("detail");
    const opening = panel.hidden;
    panel.hidden = false;
    document.body.classList.add("with-detail");
    setText($("detail-name"), String(t.name));
    const missing = typeof t.missing === "string";
    $("detail-missing").hidden = !missing;
    if (missing) $("detail-missing").textContent = `${t.missing} (removed?)`;
    for (const element of panel.querySelectorAll(".facts, h3, .detail-spark, .errors, .failures, .detail-status")) {
      element.hidden = missing;
    }
    $("detail-actions").hidden = missing;
    if (!missing) fillDetail(t, now);
    for (const [name, row] of rows) row.classList.toggle("selected", name === String(t.name));
    if (opening) $("detail-close").focus();
  }

  function fillDetail(t, now) {
    const statusName = statusOf(t.status);
    const badge = $("detail-badge");
    badge.className = "status status-" + statusName;
    setText(badge, statusName);
    setText($("detail-since"), typeof t.since === "number" ? `for ${duration(now - t.since)}` : "");
    setText($("detail-url"), String(t.url ?? ""));
    const timing = t.interval_s ? `, every ${t.interval_s} s` : "";
    setText($("detail-mode"), `${t.mode}, module ${t.module}${timing}, timeout ${t.timeout_s} s`);
    setText($("detail-labels"), labelText(t.labels) || "none");
    const live = LIVE.has(statusName);
    setText(
      $("detail-latency"),
      `now ${live ? ms(t.latency_ms) : "—"}, p50 ${ms(t.p50_ms)}, p99 ${ms(t.p99_ms)} (${count(t.samples)} samples)`,
    );
    const counts = [`${count(t.successes).toLocaleString("en")} ok`];
    if (t.mode === "persistent") {
      counts.push(`${count(t.reconnects)} reconnects`);
      if (typeof t.connected_since === "number") counts.push(`connected ${ago(now - t.connected_since)}`);
      if (count(t.messages)) counts.push(`${count(t.messages).toLocaleString("en")} messages`);
    }
    setText($("detail-counts"), counts.join(", "));

    const spark = $("detail-spark");
    if (spark.firstElementChild === null) spark.append(sparkSvg(DETAIL_SPARK));
    sparkline(spark.firstElementChild, t.history_ms, String(t.name), DETAIL_SPARK);

    const errors = groupErrors(Array.isArray(t.errors) ? t.errors : []);
    renderList($("detail-errors"), errors, "No errors recorded.", (item, group) => {
      const [reason, message, at] = errorElements();
      showError(group.error, reason, message, at, now);
      item.append(reason);
      if (group.times > 1) {
        const times = document.createElement("span");
        times.className = "error-times";
        times.textContent = ` ×${group.times}, since ${clock(new Date(Number(group.first) * 1000))}`;
        item.append(times);
      }
      item.append(message, at);
    });
    const failures = t.failures && typeof t.failures === "object" ? Object.entries(t.failures) : [];
    setText(
      $("detail-failures"),
      failures.length ? "Failures since start: " + failures.map(([r, n]) => `${r} ${n}`).join(", ") : "",
    );

    const actions = $("detail-actions");
    if (actions.dataset.name !== String(t.name)) {
      actions.replaceChildren(...actionButtons(String(t.name)));
      actions.dataset.name = String(t.name);
    }
    updateActions(actions.querySelectorAll("button"), t);
  }

  // The same error again and again (a reconnect loop) is one line: how often, since when.
  function groupErrors(errors) {
    const groups = [];
    for (const error of errors) {
      const last = groups[groups.length - 1];
      if (last && last.error.reason === error.reason && last.error.message === error.message) {
        last.times += 1;
        last.first = error.at;
      } else {
        groups.push({ error, times: 1, first: error.at });
      }
    }
    return groups;
  }

  // --- sparklines ---------------------------------------------------------------------

  function sparkSvg({ width, height }) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("role", "img");
    return svg;
  }

  function sparkline(svg, history, name, { width, height }) {
    const values = (Array.isArray(history) ? history : []).filter((v) => typeof v === "number" && isFinite(v));
    const signature = values.join(",");
    if (svg.dataset.signature === signature && svg.firstChild) return;
    svg.dataset.signature = signature;
    while (svg.firstChild) svg.firstChild.remove();
    const title = document.createElementNS(SVG_NS, "title");
    svg.append(title);
    if (values.length === 0) {
      title.textContent = "no latency samples yet";
      svg.setAttribute("aria-label", `${name}: no latency samples yet`);
      const line = document.createElementNS(SVG_NS, "line");
      line.setAttribute("x1", "2");
      line.setAttribute("x2", String(width - 2));
      line.setAttribute("y1", String(height / 2));
      line.setAttribute("y2", String(height / 2));
      line.setAttribute("stroke", "#c5cad3");
      line.setAttribute("stroke-dasharray", "3 3");
      svg.append(line);
      return;
    }
    const min = Math.min(...values);
    const max = Math.max(...values);
    const span = max - min || 1;
    const pad = 3;
    const step = values.length > 1 ? (width - 2 * pad) / (values.length - 1) : 0;
    const points = values.map((v, i) => {
      const x = values.length > 1 ? pad + i * step : width / 2;
      const y = max === min ? height / 2 : height - pad - ((v - min) / span) * (height - 2 * pad);
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

  function duration(seconds) {
    if (!isFinite(seconds) || seconds < 1) return "a moment";
    if (seconds < 90) return `${Math.round(seconds)} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 129600) return `${Math.round(seconds / 3600)} h`;
    return `${Math.round(seconds / 86400)} d`;
  }

  function ago(seconds) {
    return !isFinite(seconds) || seconds < 1 ? "just now" : `${duration(seconds)} ago`;
  }

  // --- controls -------------------------------------------------------------------------

  function buildChips() {
    const chips = $("chips");
    for (const [value, text, key] of FILTERS) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip" + (value ? " status-" + value : "");
      chip.dataset.status = value;
      chip.dataset.count = key;
      const label = document.createElement("span");
      label.textContent = text;
      const number = document.createElement("span");
      number.className = "chip-count";
      chip.append(label, " ", number);
      chip.addEventListener("click", () => changeView({ status: value, page: 1 }));
      chips.append(chip);
    }
    // The summary's counts filter too: one click from "Disconnected 3" to those three.
    for (const key of ["problems", ...STATUSES]) {
      const holder = $("sum-" + key).parentElement;
      holder.classList.add("clickable");
      holder.title = `Show the ${key === "problems" ? "broken" : key} targets`;
      holder.addEventListener("click", () => changeView({ status: key, page: 1 }));
    }
  }

  function showControls() {
    const search = $("search");
    if (document.activeElement !== search && search.value !== view.q) search.value = view.q;
    $("sort").value = view.sort;
    for (const chip of $("chips").children) {
      chip.setAttribute("aria-pressed", chip.dataset.status === view.status ? "true" : "false");
    }
    if (!view.target) hideDetail();
  }

  function goToPage(page) {
    changeView({ page: Math.max(1, page) });
    $("targets").scrollIntoView({ block: "nearest" });
  }

  function lastPageNumber() {
    return lastPage ? Math.max(1, Math.ceil(count(lastPage.matched) / PAGE_SIZE)) : 1;
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
        if (kind === "remove" && view.target === name) closeDetail();
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
    buildChips();
    showControls();
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    $("search").addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => {
        if ($("search").value !== view.q) changeView({ q: $("search").value, page: 1 }, false);
      }, SEARCH_DELAY_MS);
    });
    $("sort").addEventListener("change", () => changeView({ sort: $("sort").value, page: 1 }));
    $("first-page").addEventListener("click", () => goToPage(1));
    $("prev-page").addEventListener("click", () => goToPage(view.page - 1));
    $("next-page").addEventListener("click", () => goToPage(view.page + 1));
    $("last-page").addEventListener("click", () => goToPage(lastPageNumber()));
    $("detail-close").addEventListener("click", closeDetail);
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && view.target) closeDetail();
    });
    window.addEventListener("popstate", () => {
      view = readLocation();
      showControls();
      refreshNow();
    });
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
