#!/usr/bin/env node
/*
 * Driver for the Node RocketMQ client ali-ons@3.12.0 used by Saturn's end-to-end tests.
 * Install with scripts/install-clients (puts ali-ons in .cache/clients/node/node_modules).
 *
 *   node tests/clients/ons_client.js produce --namesrv 127.0.0.1:9876 --topic T --count N
 *        [--mode sync|async] [--concurrency 16] [--tags TagA,TagB] [--keys-prefix k]
 *        [--body-prefix b] [--props a=1,b=2] [--group G] [--timeout S] [--keep-going]
 *      one JSON line per acknowledged send:
 *        {"event":"sent","i":0,"msgId":..,"queueId":..,"queueOffset":..,"brokerName":..,"key":..,"tag":..}
 *      errors as {"event":"send_error",...}, then {"event":"summary",...}.
 *   node tests/clients/ons_client.js consume --namesrv H:P --topic T --group G [--expr 'TagA || TagB']
 *        [--model clustering|broadcasting] [--from first|last|timestamp] --expect N --timeout S
 *        [--sleep-ms 0] [--grace 0]
 *      push consumer; one {"event":"message",...} line per delivered message (msgId, keys, tags, body,
 *      props, queueId, queueOffset, brokerName, ...); exits when N distinct msgIds seen (plus --grace
 *      seconds, still recording) or timeout. --sleep-ms makes the handler slow (per message).
 *   node tests/clients/ons_client.js pull ...      -> unsupported (exit 2), see below.
 *   node tests/clients/ons_client.js probe --namesrv H:P [--seconds 5]
 *      producer + push consumer, one send to TopicTest; used by capture_fixtures.py.
 * Exit codes: 0 ok, 1 failure (send error / fewer messages than expected), 2 usage/unsupported/start error.
 *
 * API facts (read from node_modules/ali-ons/lib, v3.12.0):
 *  - exports {Message, Producer, Consumer}. new Producer({httpclient, nameSrv, producerGroup, ...}),
 *    new Consumer({httpclient, nameSrv, consumerGroup, isBroadcast, consumeFromWhere, ...}); both are
 *    sdk-base objects: `await x.ready()`, `x.on('error', ...)`, `await x.close()`.
 *  - `httpclient` is REQUIRED by an assert in RemotingClient even with nameSrv set (it is only used to
 *    fetch the name-server list from onsAddr over HTTP); a stub object is enough, no urllib needed.
 *    nameSrv may be a string "h:p" or an array. accessKeyId/accessKeySecret are optional: without
 *    them no AccessKey/Signature/OnsChannel ext fields are sent.
 *  - Producer: only `await producer.send(msg)` (sync-style, returns {sendStatus, msgId, messageQueue
 *    {topic, brokerName, queueId}, queueOffset}). msgId is the broker's offsetMsgId (response header
 *    msgId) - ali-ons never sets UNIQ_KEY. No oneway, no batch, no callback-async, no orderly selector
 *    (concurrency = several send() promises in flight, that is what --mode async does).
 *    Topic creation is NOT automatic: unlike the Java/C++ producers, a TOPIC_NOT_EXIST answer for the
 *    topic makes send() reject at once (the TBW102 fallback in tryToFindTopicPublishInfo is never
 *    reached because getTopicRouteInfoFromNameServer throws) - the topic must already have a route.
 *    It still sends defaultTopic "TBW102" / defaultTopicQueueNums 4 in SEND_MESSAGE_V2 (c/d).
 *    retryTimesWhenSendFailed 3, sendMsgTimeout 3000, maxMessageSize 128 KiB, compresses bodies
 *    >= 4 KiB (zlib deflate, sysFlag bit 0).
 *  - Message(topic, tags, body): msg.keys = [..] (joined by ' ' into KEYS), msg.tags -> TAGS
 *    (a message built without a tag carries the property TAGS = "null" - the string - on the wire;
 *    this driver deletes it instead),
 *    msg.properties[k] = v for user properties, msg.delayTimeLevel = n, msg.setStartDeliverTime(ms).
 *  - Consumer: subscribe(topic, expr, async handler(msg, mq, pq)) - handler MUST be an async function;
 *    one handler per topic; expr '*' or 'A || B' (tag filter, also re-checked client side by exact
 *    TAGS match) or {expressionType:'SQL92', subString}. Push only, NO pull consumer in the public API
 *    (pull exists only internally), so `pull` is unsupported here. Broadcasting: isBroadcast:true
 *    (offsets in memory, or local file with persistent:true). consumeFromWhere default
 *    CONSUME_FROM_LAST_OFFSET; a new group with no offset asks GET_MAX_OFFSET, for %RETRY% topics
 *    starts at 0. Clustering consumers also subscribe %RETRY%<group>. handler returning
 *    Consumer.ACTION_RETRY (or throwing) -> CONSUMER_SEND_MSG_BACK, fallback re-send to %RETRY%.
 *  - Delivered message: msgId (computed from storeHost + commitLogOffset, i.e. offsetMsgId), topic,
 *    tags, keys, body (Buffer, inflated if compressed), properties (all, incl. system ones, plus
 *    MIN_OFFSET/MAX_OFFSET added from the pull response), queueId, queueOffset, commitLogOffset,
 *    reconsumeTimes, bornTimestamp, storeTimestamp, bornHost, storeHost; brokerName via mq.
 *  - Wire: language "JAVA", version 121 (V3_4_9), JSON header without serializeTypeCurrentRPC,
 *    extFields values are raw JS values (numbers stay numbers), no "remark" key on requests.
 *    Responses are parsed as JSON only (readInt32BE(4) as header length).
 *  - Errors: a TOPIC_NOT_EXIST from the name server makes send() reject with the remark text; the push
 *    consumer emits it as an 'error' event and then waits forever (this driver reports those events
 *    and gives up at --timeout).
 */
'use strict';

const path = require('path');

const REPO = path.resolve(__dirname, '..', '..');
const ONS_PATH = process.env.SATURN_ONS_PATH ||
  path.join(REPO, '.cache', 'clients', 'node', 'node_modules', 'ali-ons');

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function log(...args) {
  process.stderr.write('[ons_client] ' + args.map(a => (typeof a === 'string' ? a : (a && a.stack) || JSON.stringify(a))).join(' ') + '\n');
}

function loadOns() {
  try {
    return require(ONS_PATH);
  } catch (err) {
    out({ event: 'start_error', error: `cannot load ali-ons from ${ONS_PATH} (run scripts/install-clients): ${err.message}` });
    process.exit(2);
  }
}

function onsVersion() {
  try {
    return 'ali-ons-' + require(path.join(ONS_PATH, 'package.json')).version;
  } catch (_) {
    return 'ali-ons-unknown';
  }
}

// ------------------------------------------------------------------ argv
function parseArgs(argv) {
  const cmd = argv[0];
  const opts = {};
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      throw new Error(`unexpected argument ${a}`);
    }
    const eq = a.indexOf('=');
    if (eq > 0) {
      opts[a.slice(2, eq)] = a.slice(eq + 1);
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      opts[a.slice(2)] = argv[++i];
    } else {
      opts[a.slice(2)] = true;
    }
  }
  return { cmd, opts };
}

const fmt = (...a) => require('util').format(...a);
const oneLine = (...a) => a.map(x => (x instanceof Error ? x.message : x)); // no stack dumps
const LOGGER_QUIET = {
  info() {},
  debug() {},
  warn(...a) { log('warn:', fmt(...oneLine(...a))); },
  error(...a) { log('error:', fmt(...a)); },
};
const LOGGER_VERBOSE = {
  info(...a) { log('info:', fmt(...a)); },
  debug() {},
  warn(...a) { log('warn:', fmt(...a)); },
  error(...a) { log('error:', fmt(...a)); },
};

// ali-ons asserts options.httpclient even when nameSrv is given; it is only used for onsAddr lookups.
const HTTPCLIENT_STUB = {
  async request(url) {
    throw new Error(`httpclient stub: no HTTP name-server lookup allowed (${url}); pass --namesrv`);
  },
};

function baseOptions(o) {
  return {
    httpclient: HTTPCLIENT_STUB,
    nameSrv: String(o.namesrv || '127.0.0.1:9876').split(/[;,]/),
    logger: o.verbose ? LOGGER_VERBOSE : LOGGER_QUIET,
    // no accessKeyId / accessKeySecret: no ACL fields on the wire
  };
}

function parseProps(s) {
  const props = {};
  for (const item of String(s || '').split(',').filter(Boolean)) {
    const eq = item.indexOf('=');
    props[eq < 0 ? item : item.slice(0, eq)] = eq < 0 ? '' : item.slice(eq + 1);
  }
  return props;
}

function hintFor(msg) {
  if (/ECONNREFUSED|ECONNRESET|connect /i.test(msg)) {
    return 'cannot connect (name server or broker not listening)';
  }
  if (/No topic route|TOPIC_NOT_EXIST|not exist/i.test(msg)) {
    return 'no route (topic unknown to the name server / no broker)';
  }
  return null;
}

// ali-ons re-emits the same Error object and prefixes its message every time
// ("MQPushConsumer occurred an error [mq:client] updateAllTopicRouterInfo occurred error, ...").
function cleanError(msg) {
  let prev;
  do {
    prev = msg;
    msg = msg.replace(/^MQPushConsumer occurred an error\s*/, '')
      .replace(/^\[mq:client\] updateAllTopicRouterInfo occurred error, /, '');
  } while (msg !== prev);
  return msg;
}

function hardDeadline(seconds) {
  // Every run is bounded: even if the client library hangs, exit.
  const t = setTimeout(() => {
    log(`hard deadline ${seconds}s reached, exiting`);
    process.exit(1);
  }, seconds * 1000);
  t.unref();
}

const SYSTEM_PROPS = new Set([ 'TAGS', 'KEYS', 'UNIQ_KEY', 'WAIT', 'DELAY', 'RETRY_TOPIC', 'REAL_TOPIC',
  'REAL_QID', 'TRAN_MSG', 'PGROUP', 'MIN_OFFSET', 'MAX_OFFSET', 'BUYER_ID', 'ORIGIN_MESSAGE_ID',
  'TRANSFER_FLAG', 'CORRECTION_FLAG', 'MQ2_FLAG', 'RECONSUME_TIME', 'MAX_RECONSUME_TIMES',
  'CONSUME_START_TIME', 'MSG_REGION', 'TRACE_ON', 'CLUSTER', '__STARTDELIVERTIME', '__SHARDING_KEY' ]);

function msgLine(msg, mq) {
  const props = {};
  const sys = {};
  for (const k of Object.keys(msg.properties || {})) {
    const v = msg.properties[k];
    // ali-ons' decoder turns the properties' trailing separator into an empty key: skip it.
    if (k === '' || v === null || v === undefined) continue;
    (SYSTEM_PROPS.has(k) ? sys : props)[k] = String(v);
  }
  return {
    event: 'message',
    msgId: msg.msgId,
    topic: msg.topic,
    keys: msg.keys || null,
    tags: msg.tags || null,
    body: msg.body ? msg.body.toString('utf8') : null,
    props,
    sysProps: sys,
    queueId: msg.queueId,
    queueOffset: msg.queueOffset,
    brokerName: mq ? mq.brokerName : null,
    reconsumeTimes: msg.reconsumeTimes,
    bornTimestamp: msg.bornTimestamp,
    storeTimestamp: msg.storeTimestamp,
    storeHost: msg.storeHost,
    uniqKey: (msg.properties && msg.properties.UNIQ_KEY) || null,
  };
}

// ------------------------------------------------------------------ produce
async function produce(o) {
  const { Producer, Message } = loadOns();
  const client = onsVersion();
  const count = Number(o.count || 1);
  const mode = o.mode || 'sync';
  const timeout = Number(o.timeout || 30);
  if (mode === 'oneway' || mode === 'batch' || mode === 'orderly') {
    out({ event: 'unsupported', client, error: `ali-ons has no ${mode} send (only awaitable producer.send())` });
    out({ event: 'summary', cmd: 'produce', mode, client, requested: count, acked: 0, failed: count, unsupported: true });
    return 2;
  }
  if (mode !== 'sync' && mode !== 'async') {
    out({ event: 'start_error', error: `unknown mode ${mode}` });
    return 2;
  }
  hardDeadline(timeout + 15);
  const tags = String(o.tags || '').split(',').filter(Boolean);
  const props = parseProps(o.props);
  const keysPrefix = o['keys-prefix'] === undefined ? 'k' : String(o['keys-prefix']);
  const bodyPrefix = o['body-prefix'] === undefined ? 'body-' : String(o['body-prefix']);
  const producer = new Producer(Object.assign(baseOptions(o), {
    producerGroup: o.group || 'PG_saturn_ons',
    sendMsgTimeout: Number(o['send-timeout'] || 3) * 1000,
  }));
  const clientErrors = [];
  producer.on('error', err => {
    const m = cleanError(err.message);
    if (clientErrors.includes(m)) return;
    clientErrors.push(m);
    log('client error event:', err.message);
  });
  const t0 = Date.now();
  try {
    await producer.ready();
  } catch (err) {
    out({ event: 'start_error', client, error: err.message, hint: hintFor(err.message) });
    return 2;
  }
  let ok = 0;
  let failed = 0;
  let stop = false;
  const deadline = t0 + timeout * 1000;

  const sendOne = async i => {
    const tag = tags.length ? tags[i % tags.length] : null;
    const key = keysPrefix ? `${keysPrefix}${i}` : null;
    const msg = new Message(o.topic || 'TopicTest', tag, `${bodyPrefix}${i}`);
    // ali-ons would send the literal tag "null" (TAGS\u0001null) for a message without tag; don't.
    if (!tag) delete msg.properties.TAGS;
    if (key) msg.keys = [ key ];
    for (const k of Object.keys(props)) msg.properties[k] = props[k];
    msg.properties.i = String(i);
    if (o['delay-level']) msg.delayTimeLevel = Number(o['delay-level']);
    try {
      const r = await producer.send(msg);
      ok++;
      out({ event: 'sent', i, msgId: r.msgId, offsetMsgId: r.msgId, queueId: Number(r.messageQueue.queueId),
        queueOffset: r.queueOffset, brokerName: r.messageQueue.brokerName, key, tag, status: r.sendStatus, client });
    } catch (err) {
      failed++;
      out({ event: 'send_error', i, key, tag, error: err.message, code: err.code === undefined ? null : err.code,
        hint: hintFor(err.message), client });
      if (!o['keep-going']) stop = true;
    }
  };

  if (mode === 'sync') {
    for (let i = 0; i < count && !stop; i++) {
      if (Date.now() > deadline) { log(`timeout after ${i} sends`); break; }
      await sendOne(i);
    }
  } else {
    const concurrency = Number(o.concurrency || 16);
    let next = 0;
    const worker = async () => {
      while (!stop && next < count && Date.now() <= deadline) {
        await sendOne(next++);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  }
  failed = count - ok;
  out({ event: 'summary', cmd: 'produce', mode, client, requested: count, acked: ok, failed,
    elapsed_ms: Date.now() - t0, clientErrors: clientErrors.slice(0, 5) });
  await closeQuietly(producer, 5000);
  return failed === 0 ? 0 : 1;
}

async function closeQuietly(obj, ms) {
  try {
    await Promise.race([ obj.close(), new Promise(r => setTimeout(r, ms).unref()) ]);
  } catch (err) {
    log('close:', err.message);
  }
}

// ------------------------------------------------------------------ consume
function consumeFromWhere(from) {
  switch (from || 'last') {
    case 'first': return 'CONSUME_FROM_FIRST_OFFSET';
    case 'last': return 'CONSUME_FROM_LAST_OFFSET';
    case 'timestamp': return 'CONSUME_FROM_TIMESTAMP';
    default: throw new Error(`--from must be first|last|timestamp, got ${from}`);
  }
}

async function consume(o) {
  const { Consumer } = loadOns();
  const client = onsVersion();
  const expect = Number(o.expect || 0);
  const timeout = Number(o.timeout || 30);
  hardDeadline(timeout + 15);
  const consumer = new Consumer(Object.assign(baseOptions(o), {
    consumerGroup: o.group || 'CG_saturn_ons',
    isBroadcast: (o.model || 'clustering') === 'broadcasting',
    consumeFromWhere: consumeFromWhere(o.from),
  }));
  const clientErrors = [];
  let closing = false;
  consumer.on('error', err => {
    const m = cleanError(err.message);
    if (closing || clientErrors.includes(m)) return; // report each distinct error once
    clientErrors.push(m);
    out({ event: 'client_error', client, error: m, hint: hintFor(m) });
  });
  const seen = new Set();
  let delivered = 0;
  let resolveDone;
  const done = new Promise(r => { resolveDone = r; });
  const expr = o.expr === undefined ? '*' : String(o.expr);
  const t0 = Date.now();
  const sleepMs = Number(o['sleep-ms'] || 0);
  const grace = Number(o.grace || 0);
  consumer.subscribe(o.topic || 'TopicTest', expr, async (msg, mq) => {
    if (sleepMs > 0) await new Promise(r => setTimeout(r, sleepMs));
    delivered++;
    const line = msgLine(msg, mq);
    line.duplicate = seen.has(line.msgId);
    seen.add(line.msgId);
    out(line);
    if (expect && seen.size >= expect) {
      if (grace > 0) setTimeout(() => resolveDone(false), grace * 1000);
      else resolveDone(false);
    }
  });
  const timer = setTimeout(() => resolveDone(true), timeout * 1000);
  try {
    await Promise.race([ consumer.ready(), done ]);
  } catch (err) {
    out({ event: 'start_error', client, error: err.message, hint: hintFor(err.message) });
    return 2;
  }
  const timedOut = await done;
  clearTimeout(timer);
  out({ event: 'summary', cmd: 'consume', client, expected: expect, distinct: seen.size, delivered,
    timed_out: timedOut, elapsed_ms: Date.now() - t0, clientErrors: clientErrors.slice(0, 5),
    hint: seen.size === 0 && clientErrors.length ? hintFor(clientErrors[0]) : null });
  closing = true; // "The socket was closed" etc. during close() are noise
  await closeQuietly(consumer, 5000);
  return (!expect || seen.size >= expect) ? 0 : 1;
}

// ------------------------------------------------------------------ probe
async function probe(o) {
  const { Producer, Consumer, Message } = loadOns();
  const client = onsVersion();
  const seconds = Number(o.seconds || 5);
  hardDeadline(seconds + 20);
  const group = o.group || 'CG_saturn_probe';
  const producer = new Producer(Object.assign(baseOptions(o), { producerGroup: group + '_PG' }));
  producer.on('error', err => out({ event: 'client_error', error: cleanError(err.message) }));
  const consumer = new Consumer(Object.assign(baseOptions(o), { consumerGroup: group }));
  consumer.on('error', err => out({ event: 'client_error', error: cleanError(err.message) }));
  consumer.subscribe(o.topic || 'TopicTest', 'TagA || TagB', async (msg, mq) => out(msgLine(msg, mq)));
  await Promise.race([ Promise.all([ producer.ready(), consumer.ready() ]), new Promise(r => setTimeout(r, seconds * 1000)) ]);
  out({ event: 'started', client });
  const msg = new Message(o.topic || 'TopicTest', 'TagA', 'probe body 0');
  msg.keys = [ 'probe-key-0' ];
  msg.properties.probeProp = 'v1';
  try {
    const r = await producer.send(msg);
    out({ event: 'sent', msgId: r.msgId, queueOffset: r.queueOffset });
  } catch (err) {
    out({ event: 'send_error', error: err.message });
  }
  await new Promise(r => setTimeout(r, seconds * 1000));
  out({ event: 'summary', cmd: 'probe', client });
  await closeQuietly(consumer, 3000);
  await closeQuietly(producer, 3000);
  return 0;
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (err) {
    out({ event: 'start_error', error: err.message });
    return 2;
  }
  const { cmd, opts } = parsed;
  switch (cmd) {
    case 'produce': return produce(opts);
    case 'consume': return consume(opts);
    case 'probe': return probe(opts);
    case 'pull':
      out({ event: 'unsupported', client: onsVersion(), error: 'ali-ons has no public pull consumer (push Consumer only)' });
      out({ event: 'summary', cmd: 'pull', client: onsVersion(), unsupported: true, messages: 0 });
      return 2;
    default:
      out({ event: 'start_error', error: `usage: ons_client.js produce|consume|pull|probe [--options]; got ${cmd}` });
      return 2;
  }
}

// process.exit() drops stdout data still queued for a pipe (a slow reader leaves megabytes of
// message lines there): exit once everything written so far has been flushed.
function exitAfterFlush(code) {
  process.stdout.write('', () => process.exit(code));
}

main().then(exitAfterFlush, err => {
  out({ event: 'start_error', error: err && err.stack || String(err) });
  exitAfterFlush(2);
});
