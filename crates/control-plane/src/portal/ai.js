// Settings → AI: signs in with an API token, shows the current provider, clusters and
// credits, and saves or tests the form through the portal API. Data is written into the page
// with textContent only, never as HTML.
"use strict";

const state = { token: null, tenant: null, role: null, view: null };
const SECRET_FIELDS = ["api_key", "aws_secret_access_key", "vertex_service_account_key"];
const TEXT_FIELDS = ["model", "endpoint_url", "organization", "api_version", "region", "gcp_project",
  "aws_access_key_id", "embedding_model"];
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: Object.assign({ "Content-Type": "application/json" },
      state.token ? { Authorization: "Bearer " + state.token } : {}),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (res.status === 401 && state.token) { signOut(); }
  return { status: res.status, data };
}

function text(el, value) { el.textContent = value == null || value === "" ? "—" : String(value); }

function signOut() {
  sessionStorage.removeItem("atlasai.token");
  state.token = null;
  $("app").hidden = true;
  $("signin").hidden = false;
}

async function signIn(apiToken) {
  const r = await api("POST", "/api/v1/auth/token", { api_token: apiToken });
  if (r.status !== 200) {
    text($("signin-error"), (r.data && r.data.error) || "Sign-in failed");
    return false;
  }
  state.token = r.data.access_token;
  state.tenant = r.data.tenant_id;
  state.role = r.data.role;
  sessionStorage.setItem("atlasai.token", JSON.stringify(r.data));
  return true;
}

function when(unix) {
  if (!unix) return "—";
  return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

function credits(mc) {
  const sign = mc < 0 ? "-" : "";
  const m = Math.abs(mc);
  return sign + Math.floor(m / 1000) + "." + String(m % 1000).padStart(3, "0");
}

function showCurrent(view) {
  const active = view.tenant.active;
  const cand = view.tenant.candidate;
  const shown = active || cand;
  const s = shown ? shown.settings : null;
  text($("cur-provider"), s ? s.provider : (view.managed ? "Atlas Cloud (" + view.managed.provider + ")" : "not configured"));
  text($("cur-model"), s ? s.model : (view.managed ? view.managed.model : null));
  const badge = $("cur-status");
  let status = "not configured";
  let cls = "badge";
  if (active) { status = "connected"; cls = "badge ok"; }
  if (cand && cand.state === "draft") { status = active ? "connected (last save failed)" : "validation failed"; cls = active ? "badge warn" : "badge bad"; }
  if (cand && cand.state === "pending_validation") { status = "pending validation"; cls = "badge warn"; }
  badge.textContent = status;
  badge.className = cls;
  text($("cur-fallback"), s ? ({ fail_closed: "Fail closed", queue_and_retry: "Queue and retry", cloud_fallback: "Fall back to Atlas Cloud" })[s.fallback_policy] : "Fail closed");
  const reason = cand && cand.reason ? (cand.state === "draft" ? "Last save was not activated: " : "") + cand.reason : "";
  $("cur-reason").textContent = reason;
  const body = $("clusters");
  body.replaceChildren();
  if (view.clusters.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td"); td.colSpan = 4; td.textContent = "No clusters yet."; tr.append(td); body.append(tr);
  }
  for (const c of view.clusters) {
    const tr = document.createElement("tr");
    const last = c.status && c.status.last_test;
    const cells = [c.name, c.connected ? "connected" : (c.enrolled ? "not connected" : "not enrolled"),
      ({ local: "local (BYOC_* / Helm values)", portal: "portal", managed: "Atlas Cloud", none: "none", unknown: "unknown" })[c.source_in_force] || c.source_in_force,
      last ? (last.ok ? "ok, " + last.latency_ms + " ms" : "failed") + " · " + when(last.at_unix) : "—"];
    for (const v of cells) { const td = document.createElement("td"); td.textContent = v; tr.append(td); }
    body.append(tr);
  }
  return s;
}

function fillForm(s) {
  if (!s) return;
  $("f-provider").value = s.provider;
  for (const f of TEXT_FIELDS) { const el = $("f-" + f); if (el) el.value = s[f] || ""; }
  $("f-embedding_provider").value = s.embedding_provider || "fallback";
  $("f-bedrock_use_task_role").checked = !!s.bedrock_use_task_role;
  for (const r of document.querySelectorAll("input[name=fallback_policy]")) r.checked = r.value === (s.fallback_policy || "fail_closed");
  $("f-redaction").value = s.redaction || "";
  for (const f of SECRET_FIELDS) {
    const el = $("f-" + f);
    const info = s.secrets && s.secrets[f];
    el.value = "";
    el.placeholder = info ? "set" + (info.last_four ? " (…" + info.last_four + ")" : "") + " — leave empty to keep" : "not set";
  }
  showProviderFields();
}

function showCredits(c) {
  text($("balance"), c.balance);
  $("price").textContent = c.managed_price ? "Atlas Cloud model " + c.managed_price.model + ": " + c.managed_price.input_per_1k + " / " + c.managed_price.output_per_1k + " credits per 1,000 input / output tokens. BYOC usage costs no credits." : "BYOC usage costs no credits.";
  const body = $("ledger");
  body.replaceChildren();
  const rows = c.recent.filter((r) => r.kind !== "reserve");
  if (rows.length === 0) {
    const tr = document.createElement("tr"); const td = document.createElement("td"); td.colSpan = 5; td.textContent = "No usage yet."; tr.append(td); body.append(tr);
  }
  for (const r of rows.slice(0, 10)) {
    const tr = document.createElement("tr");
    const label = ({ grant: "Grant", adjustment: "Adjustment", settle: "Atlas Cloud call", release: "Failed call (refunded)", usage: "BYOC usage" })[r.kind] || r.kind;
    const tokens = r.prompt_tokens != null ? r.prompt_tokens + " in / " + r.completion_tokens + " out" : "—";
    // A settlement's amount is the refund of the unused hold; its note says what was charged.
    const amount = r.kind === "settle" ? (r.note || "") : credits(r.amount);
    const cells = [when(r.created_at), label, r.model || "—", tokens, amount];
    cells.forEach((v, i) => { const td = document.createElement("td"); td.textContent = v; if (i === 4) td.className = "num"; tr.append(td); });
    body.append(tr);
  }
}

function showProviderFields() {
  const p = $("f-provider").value;
  for (const el of document.querySelectorAll("[data-for]")) el.hidden = !el.dataset.for.split(" ").includes(p);
  const hints = { openai: "e.g. gpt-4o-mini", azure: "your deployment name", bedrock: "e.g. anthropic.claude-3-haiku-20240307-v1:0", anthropic: "e.g. claude-3-5-sonnet-20241022", vertex: "e.g. gemini-2.0-flash", ollama: "e.g. llama3.2", vllm: "e.g. meta-llama/Llama-3.1-8B-Instruct", "openai-compatible": "the model your server serves" };
  $("model-hint").textContent = hints[p] || "";
}

function formValues() {
  const body = { provider: $("f-provider").value };
  for (const f of TEXT_FIELDS) { const v = $("f-" + f).value.trim(); if (v) body[f] = v; }
  for (const f of SECRET_FIELDS) { const v = $("f-" + f).value; if (v.trim()) body[f] = v.trim(); }
  const emb = $("f-embedding_provider").value;
  if (emb !== "fallback") body.embedding_provider = emb;
  if ($("f-bedrock_use_task_role").checked) body.bedrock_use_task_role = true;
  const fb = document.querySelector("input[name=fallback_policy]:checked");
  body.fallback_policy = fb ? fb.value : "fail_closed";
  const redaction = $("f-redaction").value;
  if (redaction) body.redaction = redaction;
  // Fields hidden for this provider are not sent.
  for (const el of document.querySelectorAll("[data-for][hidden] input, [data-for][hidden] textarea")) {
    const name = el.name; if (name && name !== "model") delete body[name];
  }
  return body;
}

function result(kind, message) {
  const el = $("result");
  el.className = "result " + kind;
  el.textContent = message;
}

function errorText(r) {
  if (!r.data) return "HTTP " + r.status;
  if (r.data.fields && r.data.fields.length) return r.data.fields.map((f) => f.field + ": " + f.message).join("; ");
  return r.data.error || r.data.reason || ("HTTP " + r.status);
}

async function load() {
  const [s, c] = await Promise.all([
    api("GET", "/api/v1/tenants/" + encodeURIComponent(state.tenant) + "/ai/settings"),
    api("GET", "/api/v1/tenants/" + encodeURIComponent(state.tenant) + "/credits"),
  ]);
  if (s.status !== 200) { result("bad", errorText(s)); return; }
  state.view = s.data;
  $("who").textContent = state.tenant + " · " + state.role;
  const shown = showCurrent(s.data);
  fillForm(shown);
  if (c.status === 200) showCredits(c.data);
  $("signin").hidden = true;
  $("app").hidden = false;
  document.body.dataset.loaded = "true";
}

async function onTest() {
  result("busy", "Testing…");
  const r = await api("POST", "/api/v1/tenants/" + encodeURIComponent(state.tenant) + "/ai/test", formValues());
  if (r.status !== 200) { result("bad", errorText(r)); return; }
  if (r.data.status === "ok") result("ok", "Connection OK · " + r.data.latency_ms + " ms");
  else if (r.data.status === "pending_validation") result("warn", r.data.detail);
  else result("bad", "Connection failed: " + r.data.detail);
}

async function onSave(ev) {
  ev.preventDefault();
  result("busy", "Validating and saving…");
  const r = await api("PUT", "/api/v1/tenants/" + encodeURIComponent(state.tenant) + "/ai/settings", formValues());
  if (r.status === 200) result("ok", "Saved and active · validated in " + r.data.latency_ms + " ms");
  else if (r.status === 202) result("warn", "Saved; pending validation: " + r.data.reason);
  else if (r.status === 422 && r.data && r.data.state === "draft") result("bad", "Not activated (kept as a draft): " + r.data.reason);
  else { result("bad", errorText(r)); return; }
  await load();
  document.body.dataset.saved = r.data && r.data.state ? r.data.state : "error";
}

async function onLoadModels() {
  result("busy", "Loading models…");
  const r = await api("POST", "/api/v1/tenants/" + encodeURIComponent(state.tenant) + "/ai/models", formValues());
  if (r.status !== 200) { result("bad", errorText(r)); return; }
  const list = $("model-list");
  list.replaceChildren();
  for (const m of r.data.models) { const o = document.createElement("option"); o.value = m.id; if (m.display_name) o.label = m.display_name; list.append(o); }
  result("ok", r.data.models.length + " models available");
}

document.addEventListener("DOMContentLoaded", async () => {
  $("f-provider").addEventListener("change", showProviderFields);
  $("test").addEventListener("click", onTest);
  $("load-models").addEventListener("click", onLoadModels);
  $("settings-form").addEventListener("submit", onSave);
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (await signIn($("api-token").value.trim())) { $("api-token").value = ""; await load(); }
  });
  showProviderFields();
  // A portal link may carry the API token in the fragment (never sent to the server).
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    history.replaceState(null, "", location.pathname);
    if (await signIn(decodeURIComponent(m[1]))) { await load(); return; }
  }
  const saved = sessionStorage.getItem("atlasai.token");
  if (saved) {
    const t = JSON.parse(saved);
    state.token = t.access_token; state.tenant = t.tenant_id; state.role = t.role;
    await load();
    return;
  }
  $("signin").hidden = false;
});
