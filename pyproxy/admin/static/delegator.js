// The dtab playground: evaluates a path through an editable dtab with POST /delegator.json and
// draws the delegation tree (every dentry that fired, every alt/union branch, what each binds to).
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

  function selectRouter(resetDtab) {
    const r = currentRouter();
    if (r && resetDtab) $("dtab").value = dtabText(r);
    evaluate();
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
    evaluate();
  }

  start();
})();
