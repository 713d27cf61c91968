// wsmon login form: posts the user name and password as JSON to "login"; on success wsmon
// sets the session cookie (HttpOnly: this script never sees it) and the page goes on to the
// dashboard. The password is sent once and never kept: the field is cleared after a failure.
"use strict";

(() => {
  const REQUEST_TIMEOUT_MS = 15000; // bcrypt takes a moment; a hung wsmon must not hang the form

  const $ = (id) => document.getElementById(id);

  function showError(text) {
    const box = $("login-error");
    box.textContent = text;
    box.hidden = false;
  }

  async function errorText(response) {
    try {
      const parsed = await response.json();
      if (parsed && typeof parsed.error === "string") return parsed.error;
    } catch (_) {
      // not JSON
    }
    return `HTTP ${response.status}`;
  }

  async function onSubmit(event) {
    event.preventDefault();
    $("login-error").hidden = true;
    const user = $("login-user").value;
    const password = $("login-password").value;
    if (!user || !password) {
      showError("Enter your user name and password.");
      return;
    }
    const submit = $("login-submit");
    submit.disabled = true;
    const init = {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ user, password }),
      credentials: "same-origin",
      cache: "no-store",
    };
    if (typeof AbortSignal !== "undefined" && AbortSignal.timeout) init.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    try {
      const response = await fetch("login", init);
      if (response.ok) {
        window.location.replace("dashboard");
        return;
      }
      $("login-password").value = "";
      if (response.status === 401) showError("Wrong user name or password.");
      else if (response.status === 429) {
        const wait = response.headers.get("Retry-After");
        showError(`Too many failed logins: try again ${wait ? `in ${wait} s` : "later"}.`);
      } else showError(await errorText(response));
      $("login-password").focus();
    } catch (error) {
      showError(`wsmon unreachable (${error.message}): try again.`);
    } finally {
      submit.disabled = false;
    }
  }

  function start() {
    $("ended").hidden = window.location.hash !== "#ended";
    $("login-form").addEventListener("submit", onSubmit);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
