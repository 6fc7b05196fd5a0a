// The dashboard: polls /admin/metrics.json?tree=true every second and draws, per router, the
// request rate, success rate and latency, then one row per server, client and service.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 1000;
  const HISTORY = 60;
  let routers = [];
  const prev = new Map(); // counter key -> [value, time]: rates are deltas between polls
  const rates = new Map(); // router label -> recent request rates (sparkline)

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const counter = (node, name) => (node && node[name] && typeof node[name].counter === "number" ? node[name].counter : 0);
  const gauge = (node, ...path) => {
    let n = node;
    for (const p of path) n = n && n[p];
    return n && typeof n.gauge === "number" ? n.gauge : undefined;
  };
  const latency = (node, field) => {
    const s = node && node.request_latency_ms;
    return s && s["stat.count"] > 0 ? s[`stat.${field}`] : undefined;
  };

  function rate(key, value, now) {
    const p = prev.get(key);
    prev.set(key, [value, now]);
    if (!p) return null;
    const dt = (now - p[1]) / 1000;
    return dt > 0 ? Math.max(0, (value - p[0]) / dt) : null;
  }

  const fmtRate = (r) => (r === null || r === undefined ? "-" : r < 10 ? r.toFixed(1) : String(Math.round(r)));
  const fmtMs = (v) => (v === undefined ? "-" : v < 10 ? v.toFixed(2) : String(Math.round(v)));
  const fmtInt = (v) => (v === undefined ? "-" : Number(v).toLocaleString("en-US"));
  function fmtSuccess(success, requests) {
    if (!requests) return '<span class="muted">-</span>';
    const sr = (100 * success) / requests;
    const cls = sr >= 99.5 ? "sr-ok" : sr >= 95 ? "sr-warn" : "sr-bad";
    return `<span class="${cls}">${sr.toFixed(2)}%</span>`;
  }
  function fmtDuration(ms) {
    if (ms === undefined) return "-";
    const s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
  }

  function spark(values) {
    if (values.length < 2) return '<svg class="spark"></svg>';
    const max = Math.max(1, ...values);
    const step = 100 / (HISTORY - 1);
    const x0 = 100 - step * (values.length - 1);
    const pts = values.map((v, i) => `${(x0 + i * step).toFixed(2)},${(40 - (38 * v) / max).toFixed(2)}`);
    return `<svg class="spark" viewBox="0 0 100 42" preserveAspectRatio="none">
      <polygon class="area" points="${x0.toFixed(2)},42 ${pts.join(" ")} 100,42"></polygon>
      <polyline points="${pts.join(" ")}" vector-effect="non-scaling-stroke"></polyline></svg>`;
  }

  // One table per kind; every row carries data-kind and data-id (the tests find cells by them).
  function table(kind, title, entries, label, now, extra) {
    const ids = Object.keys(entries || {}).sort();
    const heads = ["requests", "req/s", "success", "failures", ...extra.map((e) => e[0]), "p50 ms", "p95 ms", "p99 ms"];
    let rows = "";
    for (const id of ids) {
      const n = entries[id];
      const req = counter(n, "requests");
      const r = rate(`rt/${label}/${kind}/${id}/requests`, req, now);
      rows += `<tr data-kind="${kind}" data-id="${esc(id)}"><td class="name">${esc(id)}</td>
        <td class="requests">${fmtInt(req)}</td><td class="rate">${fmtRate(r)}</td>
        <td class="success">${fmtSuccess(counter(n, "success"), req)}</td><td class="failures">${fmtInt(counter(n, "failures"))}</td>
        ${extra.map((e) => `<td class="${e[1]}">${e[2](n)}</td>`).join("")}
        <td class="p50">${fmtMs(latency(n, "p50"))}</td><td class="p95">${fmtMs(latency(n, "p95"))}</td><td class="p99">${fmtMs(latency(n, "p99"))}</td></tr>`;
    }
    if (!rows) rows = `<tr><td colspan="${heads.length + 1}" class="empty">no ${kind}s yet</td></tr>`;
    return `<h3>${title}</h3><table class="grid"><thead><tr><th>${kind}</th>${heads.map((h) => `<th>${h}</th>`).join("")}</tr></thead><tbody>${rows}</tbody></table>`;
  }

  function pool(n) {
    const size = gauge(n, "loadbalancer", "size");
    const avail = gauge(n, "loadbalancer", "available");
    if (size === undefined) return "-";
    const pct = size ? Math.round((100 * (avail || 0)) / size) : 0;
    return `${avail}/${size}<span class="bar"><i style="width:${pct}%"></i></span>`;
  }

  function renderRouter(r, node, now) {
    const servers = (node && node.server) || {};
    let requests = 0, success = 0, failures = 0, conns = 0, lat = null;
    for (const id of Object.keys(servers)) {
      const s = servers[id];
      requests += counter(s, "requests");
      success += counter(s, "success");
      failures += counter(s, "failures");
      conns += gauge(s, "connections") || 0;
      if (!lat && latency(s, "p50") !== undefined) lat = s;
    }
    const rr = rate(`rt/${r.label}/requests`, requests, now);
    const hist = rates.get(r.label) || [];
    if (rr !== null) hist.push(rr);
    while (hist.length > HISTORY) hist.shift();
    rates.set(r.label, hist);
    const card = (label, value, cls) => `<div class="stat"><div class="label">${label}</div><div class="value ${cls}">${value}</div></div>`;
    return {
      requests, success, conns, rate: rr,
      html: `<section class="panel router" data-router="${esc(r.label)}">
        <div class="panel-head"><h2>${esc(r.label)}</h2><span class="muted mono">${esc(r.servers.map((s) => `${s.ip}:${s.port}`).join(", "))}</span></div>
        <div class="cards">${card("requests", fmtInt(requests), "requests")}${card("requests/s", fmtRate(rr), "rate")}
          ${card("success rate", fmtSuccess(success, requests), "success")}${card("failures", fmtInt(failures), "failures")}
          ${card("p50 ms", fmtMs(latency(lat, "p50")), "p50")}${card("p95 ms", fmtMs(latency(lat, "p95")), "p95")}${card("p99 ms", fmtMs(latency(lat, "p99")), "p99")}</div>
        ${spark(hist)}
        ${table("server", "servers", servers, r.label, now, [["connections", "connections", (n) => fmtInt(gauge(n, "connections"))]])}
        ${table("client", "clients", node && node.client, r.label, now, [["pool", "pool", pool], ["connections", "connections", (n) => fmtInt(gauge(n, "connections"))]])}
        ${table("service", "services", node && node.service, r.label, now, [["retries", "retries", (n) => fmtInt(counter(n && n.retries, "total"))]])}
      </section>`,
    };
  }

  async function poll() {
    try {
      const tree = await (await fetch("/admin/metrics.json?tree=true")).json();
      const now = Date.now();
      let html = "", requests = 0, success = 0, conns = 0, total = null;
      for (const r of routers) {
        const out = renderRouter(r, tree.rt && tree.rt[r.label], now);
        html += out.html;
        requests += out.requests;
        success += out.success;
        conns += out.conns;
        if (out.rate !== null) total = (total || 0) + out.rate;
      }
      $("routers").innerHTML = html;
      $("total-rate").textContent = fmtRate(total);
      $("total-requests").textContent = fmtInt(requests);
      $("total-success").innerHTML = fmtSuccess(success, requests);
      $("total-connections").textContent = fmtInt(conns);
      $("uptime").textContent = fmtDuration(gauge(tree.process, "uptime_ms"));
      const rss = gauge(tree.process, "rss_bytes");
      $("rss").textContent = rss === undefined ? "-" : `${(rss / 1048576).toFixed(1)} MB`;
      $("status").textContent = `updated ${new Date(now).toLocaleTimeString()}`;
    } catch (err) {
      $("status").textContent = `admin unreachable (${err})`;
    }
    setTimeout(poll, POLL_MS);
  }

  async function start() {
    try {
      routers = await (await fetch("/admin/routers.json")).json();
    } catch (err) {
      $("status").textContent = `cannot load the routers (${err})`;
    }
    poll();
  }

  start();
})();
