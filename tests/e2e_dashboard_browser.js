// The dashboard in headless Chromium (Debian's chromium, driven by playwright-core), against a
// real `saturn-broker standalone` and the official Java client 4.9.8 with message trace on.
// Started by tests/e2e_dashboard_browser.py, which starts the broker, compiles
// tests/java/dash/DashClient.java and passes everything in the environment:
//   DASH_URL, DASH_PASSWORD   the dashboard (user admin)
//   NAMESRV                   the name server
//   JAVA_CP                   classpath of DashClient and the client jars
//   SATURN_ADMIN_BIN          saturn-admin (sends one message without trace)
//   CHROMIUM                  the browser (default /usr/bin/chromium)
//   SHOTS                     a directory: write a 1280x800 PNG of each page there (optional)
// Every step reads the page's DOM; prints PASS/FAIL per step, exits 1 on a failure.
"use strict";
const { chromium } = require("playwright-core");
const { spawn, execFileSync } = require("child_process");
const readline = require("readline");
const path = require("path");

const env = process.env;
const BASE = env.DASH_URL;
const TOPIC = "DashBrowserT", GROUP = "DashBrowserG";
const DLQ_TOPIC = "DashBrowserDlqT", FAIL_GROUP = "DashBrowserFailG", WATCH_GROUP = "DashBrowserWatchG";
const results = [];
const t0 = Date.now();
const sleep = ms => new Promise(r => setTimeout(r, ms));
function log(m) { console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`); }
function check(cond, what) { if (!cond) throw new Error(what); }

// ------------------------------------------------------------------ the Java client (DashClient)
class Java {
  constructor() {
    this.p = spawn("java", ["-cp", env.JAVA_CP, "DashClient", env.NAMESRV], { stdio: ["pipe", "pipe", "pipe"] });
    this.lines = [];
    this.waiters = [];
    readline.createInterface({ input: this.p.stdout }).on("line", l => {
      this.lines.push(l);
      this.waiters = this.waiters.filter(w => !w());
    });
    this.stderr = "";
    this.p.stderr.on("data", d => { this.stderr = (this.stderr + d).slice(-4000); });
  }
  // Lines (from index `from`) whose words match `pred`.
  matching(pred, from = 0) { return this.lines.slice(from).map(l => l.split(" ")).filter(pred); }
  async until(pred, what, ms = 30000) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (pred()) return;
      await sleep(100);
    }
    throw new Error(`java: timed out waiting for ${what}; last lines: ${this.lines.slice(-5).join(" | ")} ${this.stderr.slice(-300)}`);
  }
  async cmd(line, ms = 30000) {
    const from = this.lines.length;
    const name = line.split(" ")[0];
    this.p.stdin.write(line + "\n");
    await this.until(() => this.matching(w => (w[0] === "OK" || w[0] === "ERR") && w[1] === name, from).length > 0, line, ms);
    const err = this.matching(w => w[0] === "ERR" && w[1] === name, from);
    check(err.length === 0, `java ${line}: ${err.map(w => w.join(" "))}`);
    return from;
  }
  consumed(group, from = 0) { return this.matching(w => w[0] === "CONSUMED" && w[1] === group, from); }
  quit() { try { this.p.stdin.write("quit\n"); } catch (e) { /* gone */ } setTimeout(() => this.p.kill("SIGKILL"), 5000).unref(); }
}

// ------------------------------------------------------------------ page helpers
let page;
// page.waitForFunction evaluates a string in the page, which the dashboard's content security
// policy (script-src 'self', kept on here) forbids: poll with page.evaluate instead.
async function waitFn(fn, arg, what, ms = 15000) {
  const deadline = Date.now() + ms;
  while (!(await page.evaluate(fn, arg))) {
    if (Date.now() > deadline) throw new Error("timed out: " + what);
    await sleep(100);
  }
}
// Opens a view by its hash (again, if it is already open) and waits for it to finish loading.
async function open(hash) {
  await page.evaluate(h => {
    document.getElementById("view").replaceChildren();
    if (location.hash === h) route(); else location.hash = h;
  }, hash);
  // app.js's run() shows "working…" until the view's calls are done
  await waitFn(() => document.getElementById("status").textContent !== "working…" &&
    (document.getElementById("view").childElementCount > 0 || document.getElementById("status").className === "err"),
    null, "view " + hash);
  const err = await page.locator("#status.err").count();
  return err ? await page.textContent("#status") : null;
}
// Re-opens `hash` until `probe()` answers a truthy value (its answer), or fails after `ms`.
async function poll(hash, probe, what, ms = 30000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await open(hash);
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what} (status: ${last}; view: ${(await page.textContent("#view")).slice(0, 300)})`);
    await sleep(500);
  }
}
const shots = new Set(["messages"]); // the message page is shot with a message found
async function shot(name) {
  shots.add(name);
  if (!env.SHOTS) return;
  await page.screenshot({ path: path.join(env.SHOTS, name + ".png") });
}
async function status() { return (await page.textContent("#status")).trim(); }
async function waitStatus(re, what) {
  await waitFn(r => new RegExp(r).test(document.getElementById("status").textContent),
    re.source, what).catch(async () => { throw new Error(`${what}: status "${await status()}"`); });
  return status();
}
// The rows of the first table under `scope` as objects keyed by the header cells.
async function rows(scope = "#view table") {
  return page.locator(scope).first().evaluate(t => {
    const trs = [...t.querySelectorAll("tr")];
    const head = [...trs[0].children].map(c => c.textContent);
    return trs.slice(1).map(tr => Object.fromEntries([...tr.children].map((c, i) => [head[i], c.textContent])));
  });
}
function formOf(button) { return page.locator(`#view form:has(button:text-is("${button}"))`); }

// ------------------------------------------------------------------ the steps
const java = new Java();
const S = {};

async function cluster() {
  await open("#cluster");
  const r = await rows();
  check(r.length === 2 && r.every(b => b.role === "MASTER" && b.online === "true"), `cluster rows ${JSON.stringify(r)}`);
  check(r.every(b => /^\d+d \d+h \d+m \d+s$/.test(b.uptime)), "uptime column");
  await shot("cluster");
}

async function createTopic(name) {
  await open("#topics");
  const f = formOf("Create / change");
  await f.locator("input[name=topic]").fill(name);
  await f.locator("input[name=readQueues]").fill("4");
  await f.locator("input[name=writeQueues]").fill("4");
  await f.locator("button").click();
  await page.locator(`#view a.link:text-is("${name}")`).waitFor({ timeout: 15000 });
}

async function topics() {
  await createTopic(TOPIC);
  await shot("topics");
  await open("#topic/" + TOPIC);
  const q = await rows("#view table");
  // 4 queues on each of the 2 shards
  check(q.length === 8 && q.every(r => r["Max Offset"] === "0"), `queues of a new topic ${JSON.stringify(q)}`);
}

async function produceConsume() {
  await java.cmd(`consume ${GROUP} ${TOPIC}`);
  await java.cmd(`produce ${TOPIC} 5 bk`);
  S.sent = Object.fromEntries(java.matching(w => w[0] === "SENT").map(w => [w[1], { id: w[2], offsetId: w[3] }]));
  check(Object.keys(S.sent).length === 5, "5 sends");
  await java.until(() => new Set(java.consumed(GROUP).map(w => w[2])).size === 5, "5 consumed");
  const total = await poll("#topic/" + TOPIC, async () => {
    const q = await rows("#view table");
    const sum = q.reduce((s, r) => s + Number(r["Max Offset"]), 0);
    return sum === 5 && q;
  }, "topic page: 5 messages over the queues");
  check(total.length === 8, "8 queues");
  const consumers = await page.textContent("#view p");
  check(consumers.includes(GROUP), `topic consumed by ${consumers}`);
  await shot("topic");
}

async function findByKeyAndTrace() {
  await open("#messages");
  const f = formOf("By key");
  await f.locator("input[name=topic]").fill(TOPIC);
  await f.locator("input[name=key]").fill("bk-2");
  await f.locator("button").click();
  await page.locator("#view pre").first().waitFor({ timeout: 15000 });
  const pre = await page.textContent("#view pre");
  check(pre === "dash body bk-2", `body ${pre}`);
  const fields = Object.fromEntries((await rows("#view div div table")).map(r => [r.field, r.value]));
  check(fields["Msg ID"] === S.sent["bk-2"].id && fields.OffsetID === S.sent["bk-2"].offsetId && fields.Keys === "bk-2",
    `message fields ${JSON.stringify(fields)} vs sent ${JSON.stringify(S.sent["bk-2"])}`);
  await shot("message");
  // the message view links to its trace; the traces are written in the background: re-open until
  // both the send and the consumption are there
  await page.locator(`#view a.link:has-text("Trace timeline")`).click();
  await waitFn(() => location.hash.startsWith("#trace/"), null, "trace link");
  const id = S.sent["bk-2"].id;
  const ev = await poll("#trace/" + encodeURIComponent(id), async () => {
    if (await page.locator("#trace-out .trace-table").count() === 0) return null;
    const r = await rows("#trace-out .trace-table");
    return r.some(x => x.step === "Pub (sent)") && r.some(x => x.step === "Sub (consumed)") && r;
  }, "trace timeline with Pub and Sub rows", 40000);
  const pub = ev.find(x => x.step === "Pub (sent)"), sub = ev.find(x => x.step === "Sub (consumed)");
  check(pub.group === "DashE2EPG" && pub.status === "success" && /^\d+ ms$/.test(pub.cost) && pub.client !== "-",
    `Pub row ${JSON.stringify(pub)}`);
  check(sub.group === GROUP && sub.status === "success" && sub.retries === "0" && sub.client !== "-",
    `Sub row ${JSON.stringify(sub)}`);
  check(await page.locator(`#trace-out .trace[data-msgid="${id}"] .trace-mark`).count() === ev.length, "a mark per event");
  check((await page.textContent("#trace-out h2")).includes(id), "trace heading names the message");
  await shot("trace");
  // by key on the trace page itself, and a message sent without trace (saturn-admin)
  execFileSync(env.SATURN_ADMIN_BIN, ["sendMessage", "-n", env.NAMESRV, "-t", TOPIC, "-p", "plain", "-k", "untraced"]);
  const off = await poll(`#trace/${TOPIC}/untraced`, async () => {
    const t = await page.textContent("#trace-out");
    return /Tracing is off for this message/.test(t) && t;
  }, "the untraced message's page says tracing is off", 15000);
  check(!/Pub \(sent\)/.test(off), `no timeline for the untraced message: ${off}`);
  await shot("trace-off");
}

async function groupLag(want) {
  return poll("#group/" + GROUP, async () => {
    const h = await page.textContent("#view h2");
    const m = /total lag (-?\d+)/.exec(h);
    return m && Number(m[1]) === want && h;
  }, `group page: total lag ${want}`, 40000);
}

async function lagRiseAndFall() {
  await groupLag(0);
  const members = await rows("#view table >> nth=1");
  check(members.length >= 1, "a member listed");
  await java.cmd(`stop ${GROUP}`);
  await java.cmd(`produce ${TOPIC} 6 lag`);
  await groupLag(6);
  await shot("group-lag");
  const from = java.lines.length;
  await java.cmd(`consume ${GROUP} ${TOPIC}`);
  await java.until(() => new Set(java.consumed(GROUP, from).map(w => w[2])).size >= 6, "the 6 backlogged consumed");
  await groupLag(0);
  await groupsPage();
}

async function groupsPage() {
  await open("#groups");
  const r = await rows();
  check(r.some(g => g.Group === GROUP), `groups ${JSON.stringify(r)}`);
  await shot("groups");
}

async function resetEarliest() {
  await open("#group/" + GROUP);
  const f = page.locator("#view form:has(button:text-is('Preview'))");
  await f.locator("input").first().fill(TOPIC);
  await f.locator("select").selectOption("earliest");
  await f.locator("button:text-is('Preview')").click();
  await page.locator("#view p:has-text('Would move')").waitFor({ timeout: 15000 });
  const preview = await page.textContent("#view p:has-text('Would move')");
  check(/Would move -12 messages/.test(preview), `preview: ${preview}`);
  const prev = await rows("#view div:has(p:has-text('Would move')) table");
  check(prev.reduce((s, r) => s + Number(r.moves), 0) === -12 && prev.every(r => r.target === "0"), `preview rows ${JSON.stringify(prev)}`);
  await shot("group");
  const from = java.lines.length;
  page.once("dialog", d => d.accept());
  await f.locator("button:text-is('Reset')").click();
  await page.locator("#view p:has-text('Moved')").waitFor({ timeout: 15000 });
  check(/Moved -12 messages/.test(await page.textContent("#view p:has-text('Moved')")), "reset answer");
  // consumption restarts: the online consumer gets all 12 again
  await java.until(() => new Set(java.consumed(GROUP, from).map(w => w[2])).size >= 12, "the 12 consumed again after the reset");
  await groupLag(0);
}

async function deadLetter() {
  await createTopic(DLQ_TOPIC);
  await java.cmd(`fail ${FAIL_GROUP} ${DLQ_TOPIC}`);
  await java.cmd(`produce ${DLQ_TOPIC} 1 dead`);
  const orig = java.matching(w => w[0] === "SENT" && w[1] === "dead-0")[0][2];
  await java.until(() => java.matching(w => w[0] === "FAILED" && w[2] === "dead-0" && w[4] === "1").length > 0, "a retry delivery", 30000);
  const dlq = await poll("#dlq/" + FAIL_GROUP, async () => {
    if (await page.locator("#view button.redrive").count() === 0) return null;
    return Object.fromEntries((await rows("#view div div table")).map(r => [r.field, r.value]));
  }, `a dead letter in %DLQ%${FAIL_GROUP}`, 30000);
  check(dlq.Topic === "%DLQ%" + FAIL_GROUP && dlq.Keys === "dead-0", `dead letter ${JSON.stringify(dlq)}`);
  check(await page.textContent("#view button.redrive") === "Re-drive to " + DLQ_TOPIC, "re-drive button names the origin");
  await shot("dlq");
  // the dead letter's trace: its two failed deliveries, the second a retry
  const failed = await poll("#trace/" + encodeURIComponent(orig), async () => {
    if (await page.locator("#trace-out .trace-table").count() === 0) return null;
    const r = (await rows("#trace-out .trace-table")).filter(x => x.step === "Sub (consumed)");
    return r.length >= 2 && r;
  }, "the dead letter's trace with 2 deliveries", 30000);
  check(failed.every(x => x.status === "failed" && x.group === FAIL_GROUP) &&
    failed.map(x => x.retries).sort().join(",") === "0,1", `failed deliveries ${JSON.stringify(failed)}`);
  await shot("trace-retries");
  await open("#dlq/" + FAIL_GROUP);
  await java.cmd(`stop ${FAIL_GROUP}`);
  const from = java.lines.length;
  await java.cmd(`consume ${WATCH_GROUP} ${DLQ_TOPIC}`);
  await java.until(() => java.consumed(WATCH_GROUP, from).length >= 1, "watcher reads the original");
  await page.locator("#view button.redrive").click();
  const st = await waitStatus(/re-drove/, "re-drive");
  const newId = /new id (\S+)/.exec(st)[1];
  check(newId !== orig, "re-drive is a new message");
  await java.until(() => java.consumed(WATCH_GROUP, from).some(w => w[3] === newId), "the re-driven copy consumed from " + DLQ_TOPIC);
  const copy = java.consumed(WATCH_GROUP, from).find(w => w[3] === newId);
  check(copy[2] === "dead-0" && copy[4] === "0" && copy[5] === "dash-e2e", `re-driven copy keeps keys and properties: ${copy.join(" ")}`);
  const q = await poll("#topic/" + DLQ_TOPIC, async () => {
    const r = await rows("#view table");
    return r.reduce((s, x) => s + Number(x["Max Offset"]), 0) === 2 && r;
  }, `${DLQ_TOPIC} holds the original and the re-driven copy`);
  check(q.length === 8, "queues");
}

// The read-only role sees the pages without their changes: no create form, no reset, no re-drive.
async function viewerRole() {
  const admin = page;
  const ctx = await page.context().browser().newContext({ viewport: { width: 1280, height: 800 },
    httpCredentials: { username: "viewer", password: env.DASH_VIEWER_PASSWORD } });
  page = await ctx.newPage();
  try {
    await page.goto(BASE + "#topics");
    await waitFn(() => /role: viewer/.test(document.getElementById("role").textContent), null, "login as viewer");
    await open("#topics");
    check(await page.locator(`#view a.link:text-is("${TOPIC}")`).count() === 1, "viewer sees the topics");
    check(await page.locator("#view form").count() === 0, "viewer has no create form");
    await open("#group/" + GROUP);
    check(/total lag \d+/.test(await page.textContent("#view h2")), "viewer sees the group");
    check(await page.locator("#view button:text-is('Reset')").count() === 0, "viewer has no reset");
    await open("#dlq/" + FAIL_GROUP);
    check(await page.locator("#view div div table").count() > 0, "viewer sees the dead letter");
    check(await page.locator("#view button.redrive").count() === 0, "viewer has no re-drive");
  } finally {
    await ctx.close();
    page = admin;
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: env.CHROMIUM || "/usr/bin/chromium", headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, httpCredentials: { username: "admin", password: env.DASH_PASSWORD } });
  page = await ctx.newPage();
  const jsErrors = [];
  page.on("pageerror", e => jsErrors.push(String(e)));
  await page.goto(BASE + "#cluster");
  await waitFn(() => /role: admin/.test(document.getElementById("role").textContent), null, "login as admin");
  let failed = false;
  for (const [name, fn] of [["cluster", cluster], ["topics", topics], ["produce_consume", produceConsume],
    ["find_by_key_trace", findByKeyAndTrace], ["lag_rise_fall", lagRiseAndFall], ["reset_earliest", resetEarliest],
    ["dead_letter_redrive", deadLetter], ["viewer_role", viewerRole]]) {
    const start = Date.now();
    try {
      await fn();
      results.push([name, "PASS", ""]);
    } catch (e) {
      failed = true;
      results.push([name, "FAIL", e.message]);
      if (env.SHOTS) await page.screenshot({ path: path.join(env.SHOTS, "failed-" + name + ".png") }).catch(() => {});
    }
    log(`${name}: ${results[results.length - 1][1]} (${((Date.now() - start) / 1000).toFixed(1)} s)`);
    if (failed) break;
  }
  if (!failed) {
    // every other page of the nav (pages added later, e.g. charts or producers) opens without an
    // error, and is shot too
    for (const href of await page.$$eval("#nav a", as => as.map(a => a.getAttribute("href")))) {
      const name = href.slice(1);
      if (shots.has(name)) continue;
      const err = await open(href);
      if (err) { failed = true; results.push(["page_" + name, "FAIL", err]); }
      await shot(name);
    }
  }
  if (jsErrors.length) { failed = true; results.push(["page_errors", "FAIL", jsErrors.join("; ")]); }
  java.quit();
  await browser.close();
  console.log(`\ndashboard browser e2e: ${results.length} steps, ${results.filter(r => r[1] !== "PASS").length} failed, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const [n, r, why] of results) console.log(`  ${n.padEnd(22)} ${r} ${why.slice(0, 400)}`);
  process.exit(failed ? 1 : 0);
}

main().catch(e => { console.error(e); java.quit(); process.exit(1); });
