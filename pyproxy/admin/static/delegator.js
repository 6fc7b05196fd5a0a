// The dtab playground: evaluates a path through an editable dtab with POST /delegator.json and
// draws the delegation tree (every dentry that fired, every alt/union branch, what each binds to);
// and "where will my request go": a pasted request head through one of the router's servers
// (POST /request-route.json): identification, each override used or ignored and why, the
// effective dtab and its delegation tree.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  let routers = [];
  let seq = 0; // answers to older requests are dropped
  let timer = null;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function dtabText(router) {
    return router.dentries.map((d) => `${d.prefix} => ${d.dst};`).join("\n");
  }

  function currentRouter() {
    return routers.find((r) => r.label === $("router").value);
  }

  function addrText(addr) {
    if (!addr) return ["", "neg"];
    if (addr.type === "bound") {
      const list = addr.addrs.map((a) => `${a.ip}:${a.port}`);
      return [list.length ? list.join(", ") : "no endpoints", list.length ? "" : "neg"];
    }
    if (addr.type === "failed") return [`failed: ${addr.cause}`, "failed"];
    return [addr.type, addr.type];
  }

  function children(node) {
    switch (node.type) {
      case "delegate": return [[node.delegate, null]];
      case "alt": return node.alt.map((c) => [c, null]);
      case "union": return node.union.map((w) => [w.tree, w.weight]);
      case "transformation": return [[node.tree, null]];
      default: return [];
    }
  }

  function render(node, weight) {
    const li = el("li", `node ${node.type}`);
    li.dataset.type = node.type;
    const head = el("span", "head");
    if (weight !== null && weight !== undefined) head.appendChild(el("span", "weight", `${weight} \u00d7`));
    head.appendChild(el("span", `badge ${node.type}`, node.type));
    head.appendChild(el("span", "path", node.path || ""));
    if (node.dentry) head.appendChild(el("span", "dentry", `${node.dentry.prefix} => ${node.dentry.dst}`));
    if (node.type === "transformation" && node.name) head.appendChild(el("span", "dentry", `transformer ${node.name}`));
    const extra = [];
    if (node.bound) {
      const b = el("div", "bound");
      const [text, state] = addrText(node.bound.addr);
      b.appendChild(el("span", "", `bound ${node.bound.id}`));
      if (node.bound.path && node.bound.path !== "/") b.appendChild(el("span", "", ` residual ${node.bound.path}`));
      b.appendChild(el("span", "", " \u2192 "));
      b.appendChild(el("span", `addr ${state}`, text));
      extra.push(b);
    }
    if (node.type === "exception") extra.push(el("div", "message", node.message || "error"));
    if (node.type === "neg") extra.push(el("div", "message", "no dentry or namer matched this name"));
    const kids = children(node);
    if (kids.length) {
      const details = el("details");
      details.open = true;
      const summary = el("summary");
      summary.appendChild(head);
      details.appendChild(summary);
      extra.forEach((x) => details.appendChild(x));
      const ul = el("ul");
      kids.forEach(([child, w]) => ul.appendChild(render(child, w)));
      details.appendChild(ul);
      li.appendChild(details);
    } else {
      const line = el("div", "leafline");
      line.appendChild(head);
      li.appendChild(line);
      extra.forEach((x) => li.appendChild(x));
    }
    return li;
  }

  function showError(text) {
    const box = $("error");
    box.textContent = text;
    box.classList.remove("hidden");
    $("tree").replaceChildren();
  }

  async function evaluate() {
    const mine = ++seq;
    const path = $("path").value.trim();
    const router = $("router").value;
    const query = new URLSearchParams({ router, path });
    history.replaceState(null, "", `?${query}`);
    if (!path) {
      $("error").classList.add("hidden");
      $("tree").replaceChildren();
      $("status").textContent = "enter a path, e.g. /svc/hello";
      return;
    }
    $("status").textContent = "evaluating\u2026";
    let resp, text;
    try {
      resp = await fetch("/delegator.json", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ namespace: router, dtab: $("dtab").value, path }),
      });
      text = await resp.text();
    } catch (err) {
      if (mine === seq) showError(`cannot reach the admin server: ${err}`);
      return;
    }
    if (mine !== seq) return;
    if (!resp.ok) {
      $("status").textContent = `${resp.status}`;
      showError(text || `${resp.status} ${resp.statusText}`);
      return;
    }
    $("error").classList.add("hidden");
    $("tree").replaceChildren(render(JSON.parse(text), null));
    $("status").textContent = `${path} through ${router}`;
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(evaluate, 250);
  }

  // === where will my request go: POST /request-route.json with the pasted head ===

  let routeSeq = 0;
  let routeTimer = null;

  function fillServers() {
    const r = currentRouter();
    const select = $("server");
    select.replaceChildren();
    (r ? r.servers : []).forEach((s, i) => {
      const marks = [s.clearContext ? "edge" : "", s.signedOverrides ? "signed overrides" : ""].filter(Boolean);
      const o = el("option", "", `${s.ip}:${s.port}${marks.length ? ` (${marks.join(", ")})` : ""}`);
      o.value = String(i);
      select.appendChild(o);
    });
  }

  function fact(dl, name, text, cls) {
    dl.appendChild(el("dt", "", name));
    dl.appendChild(el("dd", cls || "", text));
  }

  function routeError(text) {
    const box = $("route-error");
    box.textContent = text;
    box.classList.remove("hidden");
    $("route-facts").replaceChildren();
    $("overrides").replaceChildren();
    $("route-tree").replaceChildren();
  }

  function showRoute(answer) {
    $("route-error").classList.add("hidden");
    const dl = $("route-facts");
    dl.replaceChildren();
    const server = $("server").selectedOptions[0];
    fact(dl, "router", answer.router);
    fact(dl, "server", `${server ? server.textContent : ""}${answer.edge ? "" : " (inside: overrides accepted)"}`);
    const id = answer.identification || {};
    fact(dl, "identification", id.dst || id.error || "", id.dst ? "" : "refused");
    if (answer.refused) fact(dl, "answer", `${answer.refused.status} ${answer.refused.message}`, "refused");
    const lines = (answer.baseDtab || []).concat(answer.localDtab || []).map((d) => `${d.prefix} => ${d.dst};`);
    fact(dl, "effective dtab", lines.length ? lines.join("\n") : "(empty)");
    if ((answer.localDtab || []).length) fact(dl, "of which the request's", answer.localDtab.map((d) => `${d.prefix} => ${d.dst};`).join("\n"));
    const ul = $("overrides");
    ul.replaceChildren();
    if (!answer.overrides.length) ul.appendChild(el("li", "empty", "no override: the router's dtab alone"));
    answer.overrides.forEach((o) => {
      const li = el("li", `override ${o.used ? "used" : "ignored"}`);
      li.dataset.source = o.source;
      li.appendChild(el("span", `badge ${o.used ? "used" : "ignored"}`, o.used ? "used" : "ignored"));
      li.appendChild(el("span", "source", o.source));
      li.appendChild(el("span", "value", o.value));
      li.appendChild(el("span", "why", o.why));
      ul.appendChild(li);
    });
    $("route-tree").replaceChildren(...(answer.tree ? [render(answer.tree, null)] : []));
  }

  async function evaluateRoute() {
    const mine = ++routeSeq;
    const text = $("request").value;
    if (!text.trim()) {
      $("route-error").classList.add("hidden");
      $("route-facts").replaceChildren();
      $("overrides").replaceChildren();
      $("route-tree").replaceChildren();
      $("route-status").textContent = "paste a request's header lines, e.g. Host: world";
      return;
    }
    $("route-status").textContent = "evaluating\u2026";
    let resp, body;
    try {
      resp = await fetch("/request-route.json", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ router: $("router").value, server: Number($("server").value || 0), request: text }),
      });
      body = await resp.text();
    } catch (err) {
      if (mine === routeSeq) routeError(`cannot reach the admin server: ${err}`);
      return;
    }
    if (mine !== routeSeq) return;
    if (!resp.ok) {
      $("route-status").textContent = `${resp.status}`;
      routeError(body || `${resp.status} ${resp.statusText}`);
      return;
    }
    showRoute(JSON.parse(body));
    $("route-status").textContent = `through ${$("router").value}`;
  }

  function scheduleRoute() {
    clearTimeout(routeTimer);
    routeTimer = setTimeout(evaluateRoute, 250);
  }

  function selectRouter(resetDtab) {
    const r = currentRouter();
    if (r && resetDtab) $("dtab").value = dtabText(r);
    fillServers();
    evaluate();
    evaluateRoute();
  }

  async function start() {
    try {
      routers = await (await fetch("/admin/routers.json")).json();
    } catch (err) {
      showError(`cannot load the routers: ${err}`);
      return;
    }
    const select = $("router");
    routers.forEach((r) => select.appendChild(el("option", "", r.label)));
    const wanted = params.get("router");
    if (wanted && routers.some((r) => r.label === wanted)) select.value = wanted;
    $("path").value = params.get("path") || "";
    $("dtab").value = params.has("dtab") ? params.get("dtab") : (currentRouter() ? dtabText(currentRouter()) : "");
    select.addEventListener("change", () => selectRouter(true));
    $("path").addEventListener("input", schedule);
    $("dtab").addEventListener("input", schedule);
    $("reset").addEventListener("click", () => selectRouter(true));
    $("server").addEventListener("change", evaluateRoute);
    $("request").addEventListener("input", scheduleRoute);
    fillServers();
    evaluate();
    evaluateRoute();
  }

  start();
})();
