'use strict';
// conf/nginx-evsse.conf never strands an EventSource: Debian's nginx with
// the shipped file (ports, the stream path and the access log changed) in
// front of an examples/evhttp_hello node on a private Redis. A second node
// on the same Redis takes the publishes, so events keep coming while the
// node behind nginx is down.
//
// The node behind nginx is killed (SIGKILL) and later stopped (SIGTERM,
// drain) while events are published, and restarted on the same port each
// time. While it is down, nginx must answer a stream request with 200
// text/event-stream and a retry line (no id line); the npm eventsource client
// and headless Chromium must each get such an answer (an `open` during the
// outage), come back through nginx with their Last-Event-ID, and end with
// exactly the published sequence: no gap, nothing twice. nginx's access log
// of the stream location must show no 502/503/504.
//
// Run by ctest as proxy_nginx_front_test through run_test.sh.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  env, sleep, waitFor, freePort, request, Redis, Node, publish, shippedConf,
  Nginx, launchChromium,
} = require('./rig.js');

const EventSource = require(path.join(__dirname, '..', 'js', 'node_modules', 'eventsource'));

const TOPIC = 'proxied';
const rig = {};

test.before(async () => {
  rig.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evsse-proxy-'));
  fs.chmodSync(rig.dir, 0o755);
  rig.redis = new Redis(rig.dir);
  await rig.redis.start();
  rig.a = new Node('node-a', rig.dir, await freePort(), rig.redis.socket);
  rig.b = new Node('node-b', rig.dir, await freePort(), rig.redis.socket);
  await Promise.all([rig.a.start(), rig.b.start()]);
  const ngDir = path.join(rig.dir, 'nginx');
  fs.mkdirSync(ngDir);
  rig.nginx = new Nginx(ngDir, await freePort());
  rig.accessLog = path.join(ngDir, 'evsse-access.log');
  await rig.nginx.start(shippedConf('nginx-evsse.conf', [
    [/server 127\.0\.0\.1:8080;/, `server 127.0.0.1:${rig.a.port};`],
    [/listen 80;/, `listen 127.0.0.1:${rig.nginx.port};`],
    [/location \/alerts\/stream \{/, 'location /events {'],
    [/\/var\/log\/nginx\/evsse-access\.log/, rig.accessLog],
  ]));
  rig.browser = await launchChromium();
  console.log(`  nginx :${rig.nginx.port} -> node-a :${rig.a.port}; ` +
              `publishing on node-b :${rig.b.port}; chromium ${rig.browser.version()}`);
});

test.after(async () => {
  if (rig.es) rig.es.close();
  if (rig.browser) await rig.browser.close().catch(() => {});
  if (rig.nginx) await rig.nginx.stop();
  for (const n of [rig.a, rig.b]) {
    if (n?.child?.running()) await n.stop('SIGKILL');
  }
  if (rig.redis) await rig.redis.stop();
  if (rig.dir && !process.env.EVSSE_KEEP_TMP) fs.rmSync(rig.dir, {recursive: true, force: true});
});

// NodeClient: the npm eventsource client, with what it went through.
function nodeClient(url) {
  const c = {got: [], opens: 0, errors: 0, closed: false};
  c.es = new EventSource(url);
  c.es.onopen = () => { c.opens++; };
  c.es.onerror = () => {
    c.errors++;
    if (c.es.readyState === 2) c.closed = true;
  };
  c.es.onmessage = (e) => c.got.push({data: e.data, id: e.lastEventId});
  return c;
}

// browserClient: an EventSource in a Chromium page of nginx's origin (the
// page itself is served by the test through request interception).
async function browserClient(origin, streamPath) {
  const page = await rig.browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.route(`${origin}/proxy-test-page`, (route) => route.fulfill({
    status: 200, contentType: 'text/html', body: '<!doctype html><title>t</title>',
  }));
  await page.goto(`${origin}/proxy-test-page`);
  await page.evaluate((p) => {
    window.c = {got: [], opens: 0, errors: 0, closed: false};
    const es = new EventSource(p);
    es.onopen = () => { window.c.opens++; };
    es.onerror = () => {
      window.c.errors++;
      if (es.readyState === EventSource.CLOSED) window.c.closed = true;
    };
    es.onmessage = (e) => window.c.got.push({data: e.data, id: e.lastEventId});
  }, streamPath);
  return {
    page,
    errors,
    state: () => page.evaluate(() => ({...window.c, got: window.c.got.slice()})),
  };
}

// outage stops node A with `signal` while publishing on B, checks nginx's
// answer to a stream request meanwhile, waits until both clients got that
// answer (an `open` once A has exited), and starts A again.
async function outage(signal, clients, published, label) {
  const stopping = rig.a.stop(signal);
  let i = 0;
  const pub = async () => {
    const data = `${label}-${++i}`;
    await publish(rig.b.port, TOPIC, data);
    published.push(data);
  };
  await pub();
  await stopping;
  // Counted once node-a is gone (a draining node answers reconnects with its
  // own 200 + retry): every `open` from here on is nginx's fallback.
  const opensBefore = await Promise.all(clients.map(async (c) => (await c.state()).opens));
  const r = await request(rig.nginx.port, 'GET', `/events?topic=${TOPIC}`, {
    headers: {'Accept': 'text/event-stream', 'Last-Event-ID': 'anything'},
  });
  assert.equal(r.status, 200, `nginx while the node is down: ${r.status} ${r.body}`);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  assert.match(r.body, /^retry: \d+$/m);
  assert.doesNotMatch(r.body, /^id:/m, 'the fallback must not move the client\'s cursor');
  await waitFor(async () => {
    await pub();
    const states = await Promise.all(clients.map((c) => c.state()));
    for (const s of states) assert.ok(!s.closed, 'an EventSource was closed for good');
    return states.every((s, k) => s.opens > opensBefore[k]);
  }, `both clients to get nginx's 200 + retry while node-a is down (${signal})`);
  for (let k = 0; k < 5; k++) await pub();
  await rig.a.start();
}

test('an EventSource through nginx survives node restarts and resumes exactly',
     {timeout: 180000}, async () => {
  const origin = `http://127.0.0.1:${rig.nginx.port}`;
  const streamPath = `/events?topic=${TOPIC}`;
  const n = nodeClient(origin + streamPath);
  rig.es = n.es;
  const nodeState = {state: async () => ({...n, got: n.got.slice()})};
  const b = await browserClient(origin, streamPath);
  const clients = [nodeState, b];
  await waitFor(async () => (await Promise.all(clients.map((c) => c.state())))
      .every((s) => s.opens >= 1), 'both EventSources to open through nginx');

  // A stream without a cursor gets what is published once its Redis watch
  // is in place: publish until both got one, and check from there.
  const published = [];
  for (let i = 1; ; i++) {
    assert.ok(i <= 200, 'no live event reached both clients');
    const data = `warm-${i}`;
    await publish(rig.b.port, TOPIC, data);
    published.push(data);
    const states = await Promise.all(clients.map((c) => c.state()));
    if (states.every((s) => s.got.length > 0)) break;
    await sleep(20);
  }
  const firstChecked = published.length;

  const steady = async (label, count) => {
    for (let i = 1; i <= count; i++) {
      const data = `${label}-${i}`;
      await publish(rig.b.port, TOPIC, data);
      published.push(data);
      await sleep(5);
    }
  };
  await steady('before', 30);
  await outage('SIGKILL', clients, published, 'killed');
  await steady('after-kill', 30);
  await outage('SIGTERM', clients, published, 'stopped');
  await steady('after-stop', 30);

  const last = published[published.length - 1];
  await waitFor(async () => (await Promise.all(clients.map((c) => c.state())))
      .every((s) => s.got.some((e) => e.data === last)),
  `both clients to receive ${last}`, 30000);
  const expected = published.slice(firstChecked);
  for (const [name, c] of [['npm eventsource', nodeState], ['chromium', b]]) {
    const s = await c.state();
    const got = s.got.map((e) => e.data);
    // Whatever warm-up events arrived came in order, once each.
    const warm = got.slice(0, got.indexOf(expected[0]));
    assert.deepEqual(warm, published.slice(published.indexOf(warm[0]), firstChecked),
                     `${name}: the warm-up events`);
    assert.deepEqual(got.slice(warm.length), expected,
                     `${name}: exactly the published sequence`);
    assert.ok(!s.closed, `${name}: closed for good`);
    console.log(`  ${name}: ${got.length} events, ${s.opens} opens, ${s.errors} errors`);
    const ids = s.got.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `${name}: every event id once`);
  }
  assert.deepEqual(b.errors, [], 'page errors');

  // No 502/503/504 ever left nginx for a stream request: the stream
  // location logs proxied streams (when they end), nginx's own access log
  // the fallback answers.
  const lines = [rig.accessLog, path.join(rig.nginx.dir, 'access.log')]
      .flatMap((f) => fs.readFileSync(f, 'utf8').split('\n'))
      .filter((l) => /"GET \/events[^"]*" \d{3} /.test(l));
  const status = (l) => Number(l.match(/"GET \/events[^"]*" (\d{3}) /)[1]);
  assert.deepEqual(lines.filter((l) => status(l) !== 200), [],
                   'stream requests not answered 200');
  assert.ok(lines.length >= 5, `stream requests logged:\n${lines.join('\n')}`);
});
