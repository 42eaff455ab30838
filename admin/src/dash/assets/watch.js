// Saturn dashboard: the producers, live tail and alerts pages (loaded after app.js and charts.js).
"use strict";
function when(ms) { return ms == null ? "-" : new Date(ms).toLocaleString(); }

views.producers = async function () {
  const p = await api("/api/producers");
  const parts = [el("h2", {}, "Producer groups (from the brokers' heartbeats)")];
  if (p.groups.length === 0) parts.push(el("p", {}, "No producer is connected."));
  for (const g of p.groups) {
    parts.push(el("h3", {}, g.group), table(g.connections.map(c => ({
      clientId: c.clientId, clientAddr: c.clientAddr, language: c.language, version: c.version,
      brokers: c.brokers.join(", "), lastHeartbeat: when(c.lastUpdateTimestamp) }))));
  }
  if (p.errors.length) parts.push(el("p", { class: "err" }, "Not answered: " + p.errors.join("; ")));
  view.replaceChildren(...parts);
};

let tailTimer = null;
window.addEventListener("hashchange", () => { clearTimeout(tailTimer); tailTimer = null; });

views.tail = async function (topic) {
  if (!topic) {
    view.replaceChildren(el("h2", {}, "Live tail"),
      form([["topic", "topic"]], "Tail", async i => { location.hash = "#tail/" + encodeURIComponent(i.topic.value); }));
    return;
  }
  let r = await api("/api/tail?topic=" + encodeURIComponent(topic));
  let cursor = r.cursor, paused = false, skipped = 0;
  const rows = [];
  const out = el("div", {});
  const infoText = `Messages stored in ${topic} from now on, newest first (the last 200 are kept).`;
  const info = el("p", {}, infoText);
  const pause = el("button", { type: "button", onclick: () => { paused = !paused; pause.textContent = paused ? "Resume" : "Pause"; } }, "Pause");
  const render = () => out.replaceChildren(rows.length === 0 ? el("p", {}, "(waiting for messages…)") :
    table(rows.map(m => ({ stored: when(m.storeTimestamp), broker: m.broker, queue: m.queue, offset: m.offset,
      keys: m.keys, tags: m.tags, size: m.size, body: m.body.slice(0, 120) })), null,
    (c, m) => c === "offset" ? linkTo(`#msg/${encodeURIComponent(topic)}/${encodeURIComponent(m.broker)}/${m.queue}/${m.offset}`, m.offset) : undefined));
  view.replaceChildren(el("h2", {}, "Live tail of " + topic), info, pause, out);
  render();
  const here = location.hash;
  const poll = async () => {
    if (location.hash !== here) return;
    if (!paused) {
      try {
        r = await api("/api/tail?" + new URLSearchParams({ topic, cursor }));
        cursor = r.cursor;
        rows.unshift(...r.messages.reverse());
        rows.length = Math.min(rows.length, 200);
        if (r.skipped) { skipped += r.skipped; info.textContent = `${infoText} Skipped ${skipped} to keep up.`; }
        if (r.messages.length) render();
      } catch (e) { say("tail: " + e.message, true); }
    }
    if (location.hash === here) tailTimer = setTimeout(poll, 1000);
  };
  tailTimer = setTimeout(poll, 1000);
};

views.alerts = async function () {
  const a = await api("/api/alerts");
  const rows = list => list.map(x => ({ state: x.state, kind: x.kind, subject: x.subject, value: x.value,
    threshold: x.threshold, message: x.message, fired: when(x.firedAt), resolved: when(x.resolvedAt) }));
  const rules = a.rules;
  const ruleText = [rules.lag != null ? `group lag > ${rules.lag}` : null,
    ...Object.entries(rules.groupLag || {}).map(([g, n]) => `lag of ${g} > ${n}`),
    rules.diskPercent != null ? `disk use > ${rules.diskPercent} %` : null,
    rules.brokerDown ? "a broker missing or silent for 2 samples" : null].filter(Boolean);
  view.replaceChildren(el("h2", {}, "Alerts"),
    el("p", {}, `Rules: ${ruleText.join("; ") || "none"}. Evaluated every ${a.intervalMs / 1000} s. Webhook: ${a.webhook || "none"}.`),
    el("h2", {}, `Firing (${a.firing.length})`), table(rows(a.firing)),
    el("h2", {}, "Resolved (newest first)"), table(rows(a.resolved)),
    el("h2", {}, "Webhook deliveries (newest first)"),
    table(a.webhookDeliveries.map(d => ({ time: when(d.t), event: d.event, alert: d.id, ok: d.ok, attempts: d.attempts,
      result: d.ok ? "HTTP " + d.status : d.error }))));
};
