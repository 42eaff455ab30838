// Saturn dashboard: the trace timeline page (#trace/<message id> or #trace/<topic>/<key>), read
// from /api/trace. Uses app.js's helpers (el, api, form, table, linkTo, run, views).
"use strict";

function traceTime(ms) { return ms == null ? "-" : new Date(ms).toISOString().replace("T", " ").replace("Z", ""); }

// One message's timeline: a lane with a mark per event (placed by time) and a row per event.
function traceTimeline(m) {
  const head = el("h2", {}, "Message " + m.msgId + (m.topic ? ` (topic ${m.topic}, keys ${m.keys || "-"})` : ""));
  if (!m.traced) {
    return el("div", { class: "trace", "data-msgid": m.msgId }, head,
      el("p", { class: "trace-off" }, "Tracing is off for this message: no record of it in the trace topic " +
        "(its producer and consumers did not enable message trace, or their traces are not written yet)."));
  }
  const ev = m.events;
  const t0 = ev[0].time, t1 = ev[ev.length - 1].time;
  const span = Math.max(1, t1 - t0);
  const lane = el("div", { class: "trace-lane" });
  for (const e of ev) {
    const mark = el("span", { class: "trace-mark " + traceClass(e), title: `${e.type} ${e.group || ""} +${e.time - t0} ms` }, e.type[0]);
    mark.style.left = (4 + 92 * (e.time - t0) / span) + "%";
    lane.append(mark);
  }
  const rows = ev.map(e => ({
    step: e.type === "Pub" ? "Pub (sent)" : e.type === "Sub" ? "Sub (consumed)" : "SubBefore (consuming)",
    time: traceTime(e.time), after: "+" + (e.time - t0) + " ms",
    group: e.group, client: e.client, cost: e.cost == null ? "-" : e.cost + " ms",
    status: e.success == null ? "in progress" : e.success ? "success" : "failed",
    retries: e.type === "Pub" ? "-" : e.retries,
  }));
  const t = table(rows, ["step", "time", "after", "group", "client", "cost", "status", "retries"]);
  t.classList.add("trace-table");
  return el("div", { class: "trace", "data-msgid": m.msgId }, head,
    el("p", {}, `${ev.length} events over ${t1 - t0} ms (trace topic records)`), lane, t);
}

function traceClass(e) {
  if (e.type === "Pub") return e.success === false ? "fail" : "pub";
  return e.success === false ? "fail" : e.success === true ? "sub" : "wait";
}

views.trace = async function (a, b) {
  const out = el("div", { id: "trace-out" });
  const show = async q => {
    const r = await api("/api/trace?" + new URLSearchParams(q));
    out.replaceChildren(...r.messages.map(traceTimeline));
  };
  view.replaceChildren(el("h2", {}, "Message trace"),
    el("p", {}, "Records that clients with tracing on (enableMsgTrace) wrote to RMQ_SYS_TRACE_TOPIC."),
    form([["id", "message id (Msg ID, UNIQ_KEY)", b === undefined ? a : ""]], "Trace by id", i => show({ id: i.id.value })),
    form([["topic", "topic", b === undefined ? "" : a], ["key", "key", b || ""]], "Trace by key",
      i => show({ topic: i.topic.value, key: i.key.value })),
    out);
  if (b !== undefined) await show({ topic: a, key: b });
  else if (a) await show({ id: a });
};
