// Saturn dashboard: plain JavaScript, no framework; every view reads the JSON API under /api/.
"use strict";
const view = document.getElementById("view");
const statusEl = document.getElementById("status");
let role = "viewer";

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "-" : String(k)));
  return e;
}
function say(text, err) { statusEl.textContent = text || ""; statusEl.className = err ? "err" : ""; }

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  const j = await r.json().catch(() => ({ error: "HTTP " + r.status }));
  if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
  return j;
}

// A table from an array of objects; `cell(col, row)` may return a node.
function table(rows, cols, cell) {
  if (!rows || rows.length === 0) return el("p", {}, "(none)");
  cols = cols || Object.keys(rows[0]);
  const t = el("table", {}, el("tr", {}, ...cols.map(c => el("th", {}, c))));
  for (const r of rows) {
    t.append(el("tr", {}, ...cols.map(c => {
      const v = cell ? cell(c, r) : undefined;
      const x = v !== undefined ? v : (typeof r[c] === "object" && r[c] !== null ? JSON.stringify(r[c]) : r[c]);
      return el("td", typeof r[c] === "number" ? { class: "num" } : {}, x);
    })));
  }
  return t;
}
function form(fields, label, onsubmit, danger) {
  const f = el("form", {});
  const inputs = {};
  for (const [name, ph, val] of fields) {
    inputs[name] = el("input", { name, placeholder: ph, value: val || "" });
    f.append(inputs[name]);
  }
  const b = el("button", danger ? { class: "danger" } : {}, label);
  f.append(b);
  f.addEventListener("submit", ev => { ev.preventDefault(); run(() => onsubmit(inputs)); });
  return f;
}
async function run(fn) {
  say("working…");
  try { await fn(); if (statusEl.textContent === "working…") say(""); } catch (e) { say(e.message, true); }
}
function dur(ms) {
  if (ms == null) return "-";
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 86400)}d ${Math.floor(s % 86400 / 3600)}h ${Math.floor(s % 3600 / 60)}m ${s % 60}s`;
}
function linkTo(hash, text) { return el("a", { class: "link", href: hash }, text); }

const views = {
  async cluster() {
    const c = await api("/api/cluster");
    view.replaceChildren(el("h2", {}, "Name servers: " + c.namesrv.join(", ")),
      table(c.brokers.map(b => ({ ...b, uptime: dur(b.uptimeMs) })),
        ["cluster", "broker", "role", "addr", "online", "version", "putTotal", "getTotal", "putTps", "getTps", "diskRatio", "uptime"]));
  },
  async topics() {
    const t = await api("/api/topics");
    const parts = [el("h2", {}, "Topics")];
    if (role === "admin") {
      parts.push(form([["topic", "topic"], ["readQueues", "read queues", "8"], ["writeQueues", "write queues", "8"], ["perm", "perm (2/4/6)", "6"]],
        "Create / change", async i => {
          await api("/api/topic/update", { topic: i.topic.value, readQueues: +i.readQueues.value, writeQueues: +i.writeQueues.value, perm: +i.perm.value });
          await views.topics();
        }));
    }
    parts.push(table(t, ["Topic", "Cluster Name", "Consumer Groups"],
      (c, r) => c === "Topic" ? linkTo("#topic/" + encodeURIComponent(r.Topic), r.Topic) : undefined));
    view.replaceChildren(...parts);
  },
  async topic(name) {
    const t = await api("/api/topic?topic=" + encodeURIComponent(name));
    const parts = [el("h2", {}, "Topic " + name), el("p", {}, "Consumed by: " + (t.consumerGroups.join(", ") || "nobody")),
      el("h2", {}, "Queues (min/max offsets)"),
      table(t.queues, null, (c, r) => c === "Max Offset" && r["Max Offset"] > 0 ?
        linkTo(`#msg/${encodeURIComponent(name)}/${encodeURIComponent(r["Broker Name"])}/${r.QID}/${r["Max Offset"] - 1}`, r["Max Offset"]) : undefined),
      el("h2", {}, "Route: brokers"), table(t.route.brokerDatas), el("h2", {}, "Route: queues"), table(t.route.queueDatas)];
    if (role === "admin") {
      parts.push(form([], "Delete topic " + name, async () => {
        if (!confirm("Delete topic " + name + "?")) return;
        await api("/api/topic/delete", { topic: name }); location.hash = "#topics";
      }, true));
    }
    view.replaceChildren(...parts);
  },
  async groups() {
    const g = await api("/api/groups");
    view.replaceChildren(el("h2", {}, "Consumer groups"),
      table(g, null, (c, r) => c === "Group" ? linkTo("#group/" + encodeURIComponent(r.Group), r.Group) : undefined));
  },
  async group(name) {
    const g = await api("/api/group?group=" + encodeURIComponent(name));
    const m = g.members;
    const parts = [el("h2", {}, `Group ${name} — total lag ${g.totalLag}`), table(g.lag),
      el("h2", {}, "Members"), m.offline ? el("p", {}, m.offline) : table(m.connections),
      m.subscriptions ? table(m.subscriptions) : "", el("p", {}, linkTo("#dlq/" + encodeURIComponent(name), "Dead letters of " + name))];
    if (role === "admin") parts.push(...resetForms(name), form([], "Delete group " + name, async () => {
      if (!confirm("Delete group " + name + "?")) return;
      await api("/api/group/delete", { group: name }); location.hash = "#groups";
    }, true));
    view.replaceChildren(...parts);
  },
  async messages() {
    const out = el("div", {});
    const show = async q => {
      const r = await api("/api/message?" + new URLSearchParams(Object.fromEntries(Object.entries(q).filter(([, v]) => v))));
      out.replaceChildren(...r.messages.map(messageView));
    };
    view.replaceChildren(el("h2", {}, "Find messages"),
      form([["id", "message id (offsetMsgId, or UNIQ_KEY with topic)"], ["topic", "topic"]], "By id", i => show({ id: i.id.value, topic: i.topic.value })),
      form([["topic", "topic"], ["key", "key"]], "By key", i => show({ topic: i.topic.value, key: i.key.value })),
      form([["topic", "topic"], ["begin", "from (ms)"], ["end", "to (ms)"], ["max", "per page", "50"]], "By time",
        i => timePage(out, { topic: i.topic.value, begin: i.begin.value, end: i.end.value, max: i.max.value }, 1)),
      form([["topic", "topic"], ["broker", "broker name"], ["queue", "queue"], ["offset", "offset"]], "By queue offset",
        i => show({ topic: i.topic.value, broker: i.broker.value, queue: i.queue.value, offset: i.offset.value })),
      out);
  },
  async msg(topic, broker, queue, offset) {
    const r = await api("/api/message?" + new URLSearchParams({ topic, broker, queue, offset }));
    view.replaceChildren(...r.messages.map(messageView));
  },
  async dlq(group) {
    const out = el("div", {});
    const show = async g => {
      const d = await api("/api/dlq?group=" + encodeURIComponent(g));
      out.replaceChildren(el("h2", {}, d.topic), table(d.queues), ...d.messages.map(messageView));
    };
    view.replaceChildren(el("h2", {}, "Dead letters per group"), form([["group", "consumer group", group]], "Show", i => show(i.group.value)), out);
    if (group) await show(group);
  },
};

// One page of a topic's messages in a time range; "Next page" continues from the answer's cursor.
async function timePage(out, q, page) {
  const r = await api("/api/messages?" + new URLSearchParams(Object.fromEntries(Object.entries(q).filter(([, v]) => v))));
  const next = r.cursor ? el("button", { class: "next", onclick: () => run(() => timePage(out, { ...q, cursor: r.cursor }, page + 1)) }, "Next page") : el("span", {}, "(end of the range)");
  out.replaceChildren(el("p", {}, `Page ${page}: ${r.messages.length} messages `, next),
    table(r.messages.map(m => ({ id: m.OffsetID, broker: m["Store Host"], queue: m["Queue ID"], offset: m["Queue Offset"],
      keys: m.Keys, tags: m.Tags, stored: new Date(m["Store Timestamp"]).toISOString(), body: m.Body.text.slice(0, 80) }))));
}

function resetForms(group) {
  const preview = el("div", {});
  const f = el("form", {});
  const topic = el("input", { placeholder: "topic" });
  const to = el("select", {}, el("option", {}, "earliest"), el("option", {}, "latest"), el("option", {}, "time"), el("option", {}, "offset"));
  const time = el("input", { placeholder: "time: ms or yyyy-MM-dd#HH:mm:ss:SSS" });
  // to=offset: one queue (broker name, queue id) to an offset, clamped to the queue's [min, max].
  const [broker, queue, offset] = ["broker name", "queue", "offset"].map(p => el("input", { placeholder: p, class: "byqueue", hidden: "" }));
  to.addEventListener("change", () => { for (const i of [broker, queue, offset]) i.hidden = to.value !== "offset"; time.hidden = to.value === "offset"; });
  const body = p => to.value === "offset" ? { group, topic: topic.value, to: "offset", broker: broker.value, queue: queue.value, offset: offset.value, preview: p }
    : { group, topic: topic.value, to: to.value, time: time.value, preview: p };
  const show = r => preview.replaceChildren(el("p", {}, (r.preview ? "Would move " : "Moved ") + r.totalMoves + " messages (negative: consumed again)"),
    ...(r.note ? [el("p", { class: "note" }, r.note)] : []), table(r.queues));
  f.append(topic, to, time, broker, queue, offset, el("button", { type: "button", onclick: () => run(async () => show(await api("/api/group/reset", body(true)))) }, "Preview"),
    el("button", { class: "danger", onclick: ev => { ev.preventDefault(); if (confirm("Reset the offsets of " + group + "?")) run(async () => show(await api("/api/group/reset", body(false)))); } }, "Reset"));
  return [el("h2", {}, "Reset offset"), f, preview];
}

function messageView(m) {
  const b = m.Body;
  const fmt = el("select", {}, el("option", {}, "text"), el("option", {}, "json"), el("option", {}, "hex"));
  const pre = el("pre", {}, b.text);
  fmt.addEventListener("change", () => {
    pre.textContent = fmt.value === "hex" ? b.hex : fmt.value === "json" ? (b.json === null ? "(not JSON)" : JSON.stringify(b.json, null, 2)) : b.text;
  });
  const fields = Object.entries(m).filter(([k]) => k !== "Body" && k !== "Properties" && k !== "Message Body").map(([k, v]) => ({ field: k, value: v }));
  const parts = [el("h2", {}, "Message " + m.OffsetID), table(fields), table(Object.entries(m.Properties).map(([k, v]) => ({ property: k, value: v }))),
    el("p", {}, `Body (${b.size} bytes) as `, fmt), pre];
  if (m["Msg ID"]) parts.splice(1, 0, el("p", {}, linkTo("#trace/" + encodeURIComponent(m["Msg ID"]), "Trace timeline of " + m["Msg ID"])));
  const origin = m.Topic.startsWith("%DLQ%") && (m.Properties.RETRY_TOPIC || m.Properties.DLQ_ORIGIN_TOPIC);
  if (role === "admin" && origin) parts.splice(1, 0, el("button", { class: "redrive", onclick: () => run(async () => {
    const r = await api("/api/message/resend", { id: m.OffsetID });
    say(`re-drove ${m.OffsetID} to ${r.topic}: queue ${r.queue} offset ${r.queueOffset}, new id ${r.msgId}`);
  }) }, "Re-drive to " + origin));
  if (role === "admin") parts.push(form([["topic", "topic (default: its own; a dead letter: its origin)"]], "Re-send", async i => {
    const r = await api("/api/message/resend", { id: m.OffsetID, topic: i.topic.value });
    say(`re-sent to ${r.topic} queue ${r.queue} offset ${r.queueOffset}`);
  }));
  return el("div", {}, ...parts);
}

async function route() {
  const [name, ...args] = (location.hash.slice(1) || "cluster").split("/").map(decodeURIComponent);
  for (const a of document.querySelectorAll("#nav a")) a.className = a.getAttribute("href") === "#" + name ? "on" : "";
  if (!views[name]) { say("no page " + name, true); return; }
  await run(() => views[name](...args));
}

window.addEventListener("hashchange", route);
api("/api/whoami").then(w => { role = w.role; document.getElementById("role").textContent = "role: " + role; }).finally(route);
