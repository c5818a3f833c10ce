// The admin page: signs in, asks the public API for the summary of a
// window, draws it, and downloads the CSV of exactly that window. The
// access token lives in this script's memory only (never in storage, never
// in the address bar after sign-in); the server keeps no session. A login
// link's one-time code is redeemed for that token once, then worthless.
"use strict";

(function () {
  const SUMMARY = "/library/components/analytics/summary";
  const DOWNLOAD = "/library/components/analytics/download";
  const LOGIN_LINK = "/auth/login-link";
  const LINK_REFUSED = "This sign-in link has already been used or has expired — ask for a new one.";
  const UNREACHABLE = "The service cannot be reached. Check your connection and try again.";
  const DAY = 86400000;
  const KINDS = [
    { key: "View", css: "view", label: "Views" },
    { key: "Download", css: "download", label: "Downloads" },
    { key: "Place", css: "place", label: "Placements" },
  ];
  const PKCE_KEY = "catalytics.pkce"; // the verifier and state survive the redirect; no token does
  const $ = (id) => document.getElementById(id);

  let token = null;
  let current = null; // { start, end, interval, label } of what is shown
  let shown = null; // the summary on screen, to redraw on resize
  let pageConfig = { mode: "local" };

  // ---- windows (all UTC) ---------------------------------------------------

  const wire = (ms) => new Date(ms).toISOString();
  const dayStart = (ms) => Math.floor(ms / DAY) * DAY;

  function presetWindow(name, now) {
    const today = dayStart(now);
    const d = new Date(now);
    const y = d.getUTCFullYear();
    const m = d.getUTCMonth();
    switch (name) {
      case "7d": return { start: today - 6 * DAY, end: today + DAY, label: "the last 7 days" };
      case "30d": return { start: today - 29 * DAY, end: today + DAY, label: "the last 30 days" };
      case "90d": return { start: today - 89 * DAY, end: today + DAY, label: "the last 90 days" };
      case "this-month": return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1), label: "this month" };
      case "last-month": return { start: Date.UTC(y, m - 1, 1), end: Date.UTC(y, m, 1), label: "last month" };
      default: return null;
    }
  }

  // The bucket width that gives a readable chart for a window's length.
  function autoInterval(start, end) {
    const days = (end - start) / DAY;
    if (days <= 3) return "hour";
    if (days <= 120) return "day";
    if (days <= 730) return "week";
    return "month";
  }

  // "2024-03-10T14:05" (a datetime-local value) read as UTC.
  function parseLocalInput(value) {
    const ms = Date.parse(value + (value.length === 16 ? ":00.000Z" : "Z"));
    return Number.isNaN(ms) ? null : ms;
  }
  const toLocalInput = (ms) => wire(ms).slice(0, 16);

  // ---- API -----------------------------------------------------------------

  function query(w) {
    const p = new URLSearchParams({ startDate: wire(w.start), endDate: wire(w.end) });
    if (w.interval) p.set("interval", w.interval);
    return p.toString();
  }

  async function api(path) {
    let response;
    try {
      response = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
    } catch (e) {
      throw new Error(UNREACHABLE);
    }
    if (!response.ok) throw new Error(await plainWords(response));
    return response;
  }

  // A login link's one-time code → an access token. The code goes in the
  // body (never a URL, so no access log sees it); it works once only.
  async function redeemLoginLink(code) {
    let response;
    try {
      response = await fetch(LOGIN_LINK, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code: code }),
        cache: "no-store",
      });
    } catch (e) {
      throw new Error(UNREACHABLE);
    }
    if (response.status === 401 || response.status === 422) throw new Error(LINK_REFUSED);
    if (!response.ok) throw new Error(await plainWords(response));
    const body = await response.json();
    return body.accessToken;
  }

  // An API error in plain words.
  async function plainWords(response) {
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    const error = (body && body.error) || {};
    switch (response.status) {
      case 401: return "Your sign-in is not valid or has expired. Sign in again.";
      case 403: return "You need the View Analytics permission in this organization.";
      case 422: {
        const details = (error.details || []).map((d) => d.message).join(" ");
        return "This window cannot be shown: " + (details || error.message || "invalid request.");
      }
      case 429: {
        const wait = response.headers.get("Retry-After");
        return "Too many requests right now." + (wait ? " Try again in " + wait + " s." : " Try again shortly.");
      }
      case 503: return "The service is temporarily unavailable. Try again in a moment.";
      default: return "Something went wrong on the server (HTTP " + response.status + "). Try again later.";
    }
  }

  // ---- rendering -------------------------------------------------------------

  const number = new Intl.NumberFormat("en");

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  function bucketLabel(ms, interval, long) {
    const d = new Date(ms);
    const month = d.toLocaleString("en", { month: "short", timeZone: "UTC" });
    if (interval === "month") return month + " " + d.getUTCFullYear();
    const day = month + " " + d.getUTCDate();
    if (interval === "hour") return long ? day + ", " + String(d.getUTCHours()).padStart(2, "0") + ":00" : String(d.getUTCHours()).padStart(2, "0") + ":00";
    return long && interval === "week" ? "week of " + day : day;
  }

  function svg(tag, attrs, text) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // A stacked bar per bucket; hand-drawn SVG (smaller than any library).
  function drawChart(summary) {
    const box = $("chart");
    box.textContent = "";
    const width = Math.max(300, Math.round(box.clientWidth || 600));
    const height = width < 500 ? 220 : 280;
    const pad = { left: 44, right: 8, top: 8, bottom: 26 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const buckets = summary.buckets;
    const totals = buckets.map((b) => b.View + b.Download + b.Place);
    const max = Math.max(0, ...totals);
    const root = svg("svg", {
      viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-label": "Events per " + summary.interval + " by type: " +
        number.format(summary.totals.View) + " views, " + number.format(summary.totals.Download) +
        " downloads, " + number.format(summary.totals.Place) + " placements.",
    });
    const step = niceStep(max);
    const top = Math.max(step, Math.ceil(max / step) * step);
    const y = (v) => pad.top + plotH - (v / top) * plotH;
    const axis = svg("g", { class: "axis" });
    for (let v = 0; v <= top; v += step) {
      root.appendChild(svg("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
      axis.appendChild(svg("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" }, compact(v)));
    }
    const slot = plotW / buckets.length;
    const barW = Math.max(1, slot * (buckets.length > 60 ? 1 : 0.8));
    buckets.forEach((b, i) => {
      const x = pad.left + i * slot + (slot - barW) / 2;
      const g = svg("g", {});
      let base = 0;
      for (const k of KINDS) {
        const v = b[k.key];
        if (v > 0) {
          g.appendChild(svg("rect", { class: "bar " + k.css, x: x, width: barW, y: y(base + v), height: y(base) - y(base + v) }));
          base += v;
        }
      }
      g.appendChild(svg("title", {}, bucketLabel(Date.parse(b.start), summary.interval, true) + ": " +
        KINDS.map((k) => number.format(b[k.key]) + " " + k.label.toLowerCase()).join(", ")));
      root.appendChild(g);
    });
    // At most ~6 labels along the bottom, whatever the width.
    const every = Math.max(1, Math.ceil(buckets.length / Math.max(2, Math.floor(plotW / 90))));
    buckets.forEach((b, i) => {
      if (i % every !== 0) return;
      axis.appendChild(svg("text", { x: pad.left + i * slot + slot / 2, y: height - 8, "text-anchor": "middle" },
        bucketLabel(Date.parse(b.start), summary.interval, false)));
    });
    root.appendChild(axis);
    if (max === 0) {
      root.appendChild(svg("text", { class: "empty", x: pad.left + plotW / 2, y: pad.top + plotH / 2, "text-anchor": "middle" }, "No events in this window"));
    }
    box.appendChild(root);
  }

  function niceStep(max) {
    if (max <= 4) return 1;
    const raw = max / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  function compact(v) {
    if (v >= 1e6) return (v / 1e6).toLocaleString("en", { maximumFractionDigits: 1 }) + "M";
    if (v >= 1e3) return (v / 1e3).toLocaleString("en", { maximumFractionDigits: 1 }) + "k";
    return String(v);
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      if (c.className) td.className = c.className;
      if (c.node) td.appendChild(c.node); else td.textContent = c.text;
      tr.appendChild(td);
    }
    return tr;
  }

  function labelled(main, id) {
    const frag = document.createDocumentFragment();
    frag.appendChild(document.createTextNode(main));
    const small = document.createElement("span");
    small.className = "id";
    small.textContent = id;
    frag.appendChild(small);
    return frag;
  }

  function fillTop(tableId, entries, label) {
    const body = $(tableId).tBodies[0];
    body.textContent = "";
    if (entries.length === 0) {
      body.appendChild(row([{ text: "No events in this window" }, { text: "" }]));
      return;
    }
    for (const e of entries) {
      body.appendChild(row([{ node: labelled(e[label], e.id) }, { text: number.format(e.events), className: "num" }]));
    }
  }

  function render(summary) {
    for (const dd of document.querySelectorAll("[data-total]")) {
      dd.textContent = number.format(summary.totals[dd.dataset.total]);
    }
    drawChart(summary);
    const body = $("bucket-table").tBodies[0];
    body.textContent = "";
    for (const b of summary.buckets) {
      body.appendChild(row([{ text: bucketLabel(Date.parse(b.start), summary.interval, true) },
        ...KINDS.map((k) => ({ text: number.format(b[k.key]) }))]));
    }
    fillTop("top-components", summary.topComponents, "name");
    fillTop("top-users", summary.topUsers, "email");
  }

  // ---- actions -----------------------------------------------------------------

  async function show(w) {
    const chosen = $("interval").value;
    const interval = chosen === "auto" ? autoInterval(w.start, w.end) : chosen;
    const next = { start: w.start, end: w.end, interval: interval, label: w.label };
    $("from").value = toLocalInput(w.start);
    $("to").value = toLocalInput(w.end);
    $("showing").textContent = "Loading " + describe(next) + "…";
    $("app").setAttribute("aria-busy", "true");
    try {
      const summary = await (await api(SUMMARY + "?" + query(next))).json();
      current = next;
      shown = summary;
      showError("");
      render(summary);
      $("showing").textContent = "Showing " + describe(next) + ".";
    } catch (e) {
      showError(e.message);
      $("showing").textContent = current ? "Still showing " + describe(current) + "." : "";
    } finally {
      $("app").removeAttribute("aria-busy");
    }
  }

  function describe(w) {
    return (w.label ? w.label + ", " : "") + wire(w.start).replace("T", " ").slice(0, 16) +
      " to " + wire(w.end).replace("T", " ").slice(0, 16) + " UTC, by " + w.interval;
  }

  function press(preset) {
    for (const b of document.querySelectorAll("[data-preset]")) {
      b.setAttribute("aria-pressed", String(b.dataset.preset === preset));
    }
  }

  async function download() {
    if (!current) return;
    const button = $("download");
    button.disabled = true;
    try {
      const response = await api(DOWNLOAD + "?" + query({ start: current.start, end: current.end }));
      const disposition = response.headers.get("Content-Disposition") || "";
      const match = /filename="([^"]+)"/.exec(disposition);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = match ? match[1] : "ComponentsAnalytics.csv";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      showError("");
    } catch (e) {
      showError(e.message);
    } finally {
      button.disabled = false;
    }
  }

  // ---- sign-in -------------------------------------------------------------------

  function claimsOf(jwt) {
    try {
      const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(decodeURIComponent(escape(atob(part))));
    } catch (e) {
      return {};
    }
  }

  function signedIn(accessToken) {
    token = accessToken;
    const c = claimsOf(token);
    const who = [c.email || c.sub, c.org ? "organization " + c.org : null].filter(Boolean).join(" · ");
    $("who").textContent = who ? "Signed in as " + who : "Signed in";
    $("who").hidden = false;
    $("sign-out").hidden = false;
    $("sign-in").hidden = true;
    $("app").hidden = false;
    press("30d");
    show(presetWindow("30d", Date.now()));
  }

  function signInPage() {
    $("sign-in").hidden = false;
    $("sign-in-local").hidden = pageConfig.mode !== "local";
    $("sign-in-issuer").hidden = pageConfig.mode !== "issuer";
  }

  const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));
  const redirectUri = () => location.origin + "/";

  async function discovery() {
    const base = pageConfig.issuer.replace(/\/+$/, "");
    const response = await fetch(base + "/.well-known/openid-configuration");
    if (!response.ok) throw new Error("The identity provider cannot be reached (HTTP " + response.status + ").");
    return response.json();
  }

  async function startIssuerSignIn() {
    if (!pageConfig.clientId) {
      showError("Sign-in is not configured: the service needs the ui.client_id setting.");
      return;
    }
    try {
      const meta = await discovery();
      const verifier = random(48);
      const state = random(16);
      const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
      sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier: verifier, state: state }));
      const p = new URLSearchParams({
        response_type: "code", client_id: pageConfig.clientId, redirect_uri: redirectUri(),
        scope: pageConfig.scope, state: state, code_challenge: challenge, code_challenge_method: "S256",
      });
      location.assign(meta.authorization_endpoint + "?" + p.toString());
    } catch (e) {
      showError(e.message || "Sign-in failed.");
    }
  }

  // Back from the provider with ?code=…&state=…: exchange the code.
  async function finishIssuerSignIn(params) {
    const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
    sessionStorage.removeItem(PKCE_KEY);
    history.replaceState(null, "", location.pathname);
    if (params.get("error")) throw new Error("Sign-in was refused: " + (params.get("error_description") || params.get("error")));
    if (!saved || saved.state !== params.get("state")) throw new Error("Sign-in failed: the answer does not belong to this page. Sign in again.");
    const meta = await discovery();
    const response = await fetch(meta.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectUri(),
        client_id: pageConfig.clientId, code_verifier: saved.verifier,
      }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok || !body.access_token) {
      throw new Error("Sign-in failed: " + (body.error_description || body.error || "HTTP " + response.status));
    }
    return body.access_token;
  }

  async function start() {
    for (const b of document.querySelectorAll("[data-preset]")) {
      b.addEventListener("click", () => { press(b.dataset.preset); show(presetWindow(b.dataset.preset, Date.now())); });
    }
    $("custom").addEventListener("submit", (e) => {
      e.preventDefault();
      const from = parseLocalInput($("from").value);
      const to = parseLocalInput($("to").value);
      if (from === null || to === null) { showError("Enter both date-times."); return; }
      if (to <= from) { showError("The end must be later than the start."); return; }
      press(null);
      show({ start: from, end: to, label: "" });
    });
    $("interval").addEventListener("change", () => { if (current) show(current); });
    $("download").addEventListener("click", download);
    $("sign-out").addEventListener("click", () => { token = null; location.replace("/"); });
    $("sign-in-button").addEventListener("click", startIssuerSignIn);
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (shown) drawChart(shown); }, 250);
    });

    // A login link: its one-time code travels in the fragment, which never
    // reaches a server; remove it from the address bar and history before
    // anything else, then redeem it. (`#token=` is the form links had before
    // they became one-time: refused the same way.)
    const fragment = new URLSearchParams(location.hash.slice(1));
    const code = fragment.get("code");
    const outdated = fragment.has("token");
    if (code !== null || outdated) {
      history.replaceState(null, "", location.pathname);
      try {
        if (outdated || !code) throw new Error(LINK_REFUSED);
        signedIn(await redeemLoginLink(code));
        return;
      } catch (e) {
        showError(e.message);
      }
    }
    try {
      pageConfig = await (await fetch("/admin/config.json")).json();
    } catch (e) {
      pageConfig = { mode: "local" };
    }
    const params = new URLSearchParams(location.search);
    if (pageConfig.mode === "issuer" && (params.get("code") || params.get("error"))) {
      try {
        signedIn(await finishIssuerSignIn(params));
        return;
      } catch (e) {
        showError(e.message);
      }
    }
    signInPage();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
