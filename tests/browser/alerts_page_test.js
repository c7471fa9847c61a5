'use strict';
// The alert server's page (GET / of examples/alerts) in headless Debian
// Chromium, driven by playwright-core. Everything runs on loopback and is
// started here and stopped by pid: a private redis-server (unix socket in a
// temp dir), evsse-alerts nodes with a configuration made from
// conf/alerts-redis.conf, and Chromium with a fresh user-data dir.
//
// 1. Restarts: the page follows a team while its node is stopped (SIGTERM:
//    drain; then SIGKILL: crash) and started again on the same port and the
//    same Redis. Alerts are published before, during (on a second node) and
//    after each outage. The page must show each alert exactly once, newest
//    first, and its state indicator must go open -> reconnecting -> open.
// 2. Gap: a TCP relay in front of the node holds the page off while alerts
//    are published and the team's stream is trimmed, so the page's cursor is
//    older than the history. On reconnect the server sends the gap event;
//    the page must reload /alerts/recent and again show every alert once.
//
// Run by ctest as browser_alerts_page_test through run_test.sh, which passes
// the paths below in the environment.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const {
  sleep, Fatal, waitFor, freePort, Child, request, Redis, launchChromium,
} = require('./harness.js');

const ALERTS_BIN = process.env.EVSSE_ALERTS_BIN;
const REDIS_CONF = process.env.EVSSE_ALERTS_REDIS_CONF;
const TOKEN = 'browser-test-token-0123456789';

// alertsConf is conf/alerts-redis.conf with this test's Redis, a short
// reconnection delay (the page's EventSource waits `retry` between
// attempts) and a short drain. Each replaced directive must exist, so a
// change of the shipped file is noticed here.
function alertsConf(redisSocket) {
  let conf = fs.readFileSync(REDIS_CONF, 'utf8');
  const set = (re, to) => {
    assert.match(conf, re, `conf/alerts-redis.conf has no ${re}`);
    conf = conf.replace(re, to);
  };
  set(/^(\s*)address [^;]+;/m, `$1address unix:${redisSocket};`);
  set(/^(\s*)retry [^;]+;/m, '$1retry 300ms;');
  set(/^(\s*)retry_jitter [^;]+;/m, '$1retry_jitter 200ms;');
  set(/^shutdown_timeout [^;]+;/m, 'shutdown_timeout 1s;');
  return conf;
}

async function metric(port, name) {
  const r = await request(port, 'GET', '/metrics');
  const m = r.body.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : undefined;
}

// Node: one evsse-alerts process on a fixed port (restarts reuse it).
class Node {
  constructor(name, dir, port, confPath) {
    Object.assign(this, {name, dir, port, confPath});
  }
  async start() {
    const logPath = path.join(this.dir, `${this.name}.log`);
    const before = fs.existsSync(logPath) ? fs.readFileSync(logPath, 'utf8').length : 0;
    this.child = new Child(this.name, [
      ALERTS_BIN, '--config', this.confPath, '--listen', `127.0.0.1:${this.port}`,
    ], logPath, {ALERTS_TOKEN: TOKEN});
    await waitFor(() => {
      if (!this.child.running()) throw new Fatal(`${this.name} exited:\n${this.child.log()}`);
      return this.child.log().slice(before).includes('msg=listening');
    }, `${this.name} to listen`);
    // Publishing needs the Redis link.
    await waitFor(async () => (await metric(this.port, 'evsse_redis_up')) === 1,
                  `${this.name}: evsse_redis_up 1`);
  }
  stop(signal) { return this.child.stop(signal); }
}

// Relay: a TCP relay to `target`; while blocked it cuts every connection,
// so a page behind it cannot reach the node.
class Relay {
  constructor(target) {
    this.target = target;
    this.blocked = false;
    this.sockets = new Set();
    this.server = net.createServer((c) => {
      if (this.blocked) return c.destroy();
      const up = net.createConnection(this.target, '127.0.0.1');
      for (const s of [c, up]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      c.pipe(up);
      up.pipe(c);
      c.on('close', () => up.destroy());
      up.on('close', () => c.destroy());
    });
  }
  listen() {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => {
      this.port = this.server.address().port;
      resolve();
    }));
  }
  block() {
    this.blocked = true;
    for (const s of this.sockets) s.destroy();
  }
  unblock() { this.blocked = false; }
  close() {
    this.block();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

let seq = 0;
// publish posts one alert; its title is unique so the DOM can be checked.
async function publish(node, team, severity = 'warning') {
  const title = `${team}-${String(++seq).padStart(3, '0')}`;
  const r = await request(node.port, 'POST', '/alerts', {
    headers: {'Authorization': `Bearer ${TOKEN}`, 'Content-Type': 'application/json'},
    body: JSON.stringify({severity, title, body: `published on ${node.name}`, team}),
  });
  assert.equal(r.status, 200, `POST /alerts on ${node.name}: ${r.body}`);
  const {id} = JSON.parse(r.body);
  // The page orders by the server's millisecond timestamp: keep them apart.
  await sleep(3);
  return {id, title, severity};
}

// holdLive subscribes to `team` on `node` with a plain HTTP client and
// publishes alerts until one arrives: the node's Redis watch of the team is
// then synced. A page that connects without a cursor only gets what is
// published after that sync, which its 200 answer does not wait for, so
// alerts published in between would reach it through neither its stream nor
// its first /alerts/recent load. The alerts published here are part of
// `published` (the page loads them from /alerts/recent). Call close() once
// the page is connected.
async function holdLive(node, team, published) {
  let text = '';
  const req = http.get({host: '127.0.0.1', port: node.port, agent: false,
                        path: `/alerts/stream?topic=${team}`,
                        headers: {Accept: 'text/event-stream'}});
  req.on('error', () => {});
  const res = await new Promise((resolve, reject) => {
    req.on('response', resolve);
    req.on('error', reject);
  });
  assert.equal(res.statusCode, 200);
  res.setEncoding('utf8');
  res.on('data', (d) => { text += d; });
  for (let i = 0; i < 50; i++) {
    const a = await publish(node, team, 'info');
    published.push(a);
    if (await waitFor(() => text.includes(`id: ${a.id}\n`), 'a probe', 300)
        .catch(() => false)) {
      return {close: () => req.destroy()};
    }
  }
  req.destroy();
  throw new Error(`${node.name} never delivered an alert of ${team} live`);
}

// Page: one browser tab on the alert page, with what it went through.
class Page {
  static async open(context, url) {
    const p = new Page();
    p.page = await context.newPage();
    p.errors = [];
    p.recentLoads = 0;
    p.page.on('pageerror', (e) => p.errors.push(e.message));
    p.page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') {
        console.log(`  [page console.${m.type()}] ${m.text()}`);
      }
    });
    p.page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/alerts/recent') p.recentLoads++;
    });
    // Every change of the connection state indicator, from the first one.
    await p.page.addInitScript(() => {
      window.__states = [];
      new MutationObserver(() => {
        const el = document.getElementById('state');
        if (!el) return;
        const s = el.textContent;
        if (window.__states[window.__states.length - 1] !== s) window.__states.push(s);
      }).observe(document, {subtree: true, childList: true, characterData: true,
                            attributes: true});
    });
    await p.page.goto(url);
    return p;
  }
  states() { return this.page.evaluate(() => window.__states.slice()); }
  async state() { return (await this.states()).at(-1); }
  // shown lists the alerts in the DOM, top (newest) first.
  shown() {
    return this.page.$$eval('#alerts li', (lis) => lis.map((li) => ({
      id: li.dataset.id,
      title: li.querySelector('strong').textContent.trim(),
      severity: li.className,
    })));
  }
  // expectExactly waits until the page shows `published`, newest first,
  // each once, then checks that nothing more arrives.
  async expectExactly(published, what) {
    const want = published.slice().reverse();
    let got;
    await waitFor(async () => {
      got = await this.shown();
      return got.length >= want.length;
    }, `${what}: ${want.length} alerts on the page`).catch((e) => {
      throw new Error(`${e.message}; the page shows ${JSON.stringify(got)}`);
    });
    await sleep(300);
    got = await this.shown();
    assert.deepEqual(got, want, `${what}: the page shows each alert once, newest first`);
    assert.deepEqual(this.errors, [], 'no script errors on the page');
  }
}

// The rig: Redis, two nodes, Chromium; shared by the tests, torn down last.
const rig = {};

test.before(async () => {
  rig.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evsse-browser-'));
  rig.redis = new Redis(rig.dir);
  await rig.redis.start();
  const confPath = path.join(rig.dir, 'alerts-redis.conf');
  fs.writeFileSync(confPath, alertsConf(rig.redis.socket));
  rig.a = new Node('node-a', rig.dir, await freePort(), confPath);
  rig.b = new Node('node-b', rig.dir, await freePort(), confPath);
  await Promise.all([rig.a.start(), rig.b.start()]);
  rig.profile = fs.mkdtempSync(path.join(os.tmpdir(), 'evsse-chromium-'));
  rig.context = await launchChromium({profile: rig.profile});
  console.log(`  chromium ${rig.context.browser()?.version() ?? ''}`.trimEnd() +
              `, node-a :${rig.a.port}, node-b :${rig.b.port}`);
});

test.after(async () => {
  if (rig.context) await rig.context.close().catch(() => {});
  for (const n of [rig.a, rig.b]) {
    if (n?.child?.running()) await n.stop('SIGKILL');
  }
  if (rig.redis) await rig.redis.stop();
  for (const d of [rig.profile, rig.dir]) {
    if (d) fs.rmSync(d, {recursive: true, force: true});
  }
});

// restart stops node A with `signal`, publishes on B while A is down, and
// starts A again on the same port; the page must go through reconnecting
// and come back.
async function restartNodeA(page, team, signal, published) {
  const seen = (await page.states()).length;
  const {code, signal: got} = await rig.a.stop(signal);
  if (signal === 'SIGTERM') assert.equal(code, 0, 'node A drains and exits 0');
  else assert.equal(got, signal);
  await waitFor(async () => (await page.states()).slice(seen).includes('reconnecting'),
                `the page to show reconnecting after ${signal}`);
  // Published elsewhere while the page's node is down: only Redis has them.
  for (let i = 0; i < 2; i++) published.push(await publish(rig.b, team, 'critical'));
  await rig.a.start();
  await waitFor(async () => (await page.state()) === 'open',
                `the page to reconnect after ${signal}`);
  const states = (await page.states()).slice(seen);
  assert.equal(states[0], 'reconnecting', `states after ${signal}: ${states}`);
  assert.equal(states.at(-1), 'open', `states after ${signal}: ${states}`);
  assert.ok(!states.includes('closed'), `the EventSource never gave up: ${states}`);
}

test('the page shows every alert once, in order, across node restarts', async () => {
  const team = 'web';
  const published = [];
  const live = await holdLive(rig.a, team, published);
  const page = await Page.open(rig.context, `http://127.0.0.1:${rig.a.port}/?team=${team}`);
  await waitFor(async () => (await page.state()) === 'open', 'the page to connect');
  live.close();
  assert.equal(await page.page.textContent('#team'), team);

  for (let i = 0; i < 4; i++) published.push(await publish(rig.a, team, 'info'));
  await page.expectExactly(published, 'before any restart');

  await restartNodeA(page, team, 'SIGTERM', published);
  for (let i = 0; i < 3; i++) published.push(await publish(rig.a, team, 'warning'));
  await page.expectExactly(published, 'after a drained restart');

  await restartNodeA(page, team, 'SIGKILL', published);
  for (let i = 0; i < 3; i++) published.push(await publish(rig.a, team, 'info'));
  await page.expectExactly(published, 'after a crash restart');

  const states = await page.states();
  console.log(`  states: ${states.join(' -> ')}`);
  console.log(`  shown: ${published.length} alerts, ${page.recentLoads} /alerts/recent load(s)`);
  assert.deepEqual(states.slice(0, 2), ['connecting', 'open']);
  // Replay after each restart came from the stream: no refetch needed.
  assert.equal(page.recentLoads, 1, 'only the first connect loads /alerts/recent');
  await page.page.close();
});

test('a cursor older than the history makes the page reload recent alerts', async () => {
  const team = 'payments';
  const relay = new Relay(rig.a.port);
  await relay.listen();
  try {
    const published = [];
    const live = await holdLive(rig.a, team, published);
    const page = await Page.open(rig.context, `http://127.0.0.1:${relay.port}/?team=${team}`);
    await waitFor(async () => (await page.state()) === 'open', 'the page to connect');
    live.close();
    for (let i = 0; i < 3; i++) published.push(await publish(rig.a, team, 'info'));
    await page.expectExactly(published, 'before the gap');
    await waitFor(() => page.recentLoads === 1, 'the first /alerts/recent load');
    const gapsBefore = await metric(rig.a.port, 'evsse_gaps_total');

    // Hold the page off, publish on its node (so its recent list has them)
    // and trim the team's stream to its last entry: the page's cursor is
    // now older than anything Redis keeps.
    relay.block();
    await waitFor(async () => (await page.state()) === 'reconnecting',
                  'the page to lose its stream');
    for (let i = 0; i < 4; i++) published.push(await publish(rig.a, team, 'critical'));
    // Node A has let go of the page's old stream (and of every other), so
    // the page's next request resumes from its cursor, not from a live
    // subscription.
    await waitFor(async () => (await metric(rig.a.port, 'evsse_connections_active')) === 0,
                  'node A to close the streams cut by the relay');
    const stream = `evsse:{${team}}:s`;
    assert.equal(typeof await rig.redis.command(['XTRIM', stream, 'MAXLEN', '1']), 'number');
    relay.unblock();

    await page.expectExactly(published, 'after the gap');
    assert.equal(page.recentLoads, 2, 'the gap event reloads /alerts/recent');
    assert.equal(await metric(rig.a.port, 'evsse_gaps_total'), gapsBefore + 1);
    assert.equal(await page.state(), 'open');

    // And it goes on live.
    published.push(await publish(rig.a, team, 'warning'));
    await page.expectExactly(published, 'live after the gap');
    console.log(`  states: ${(await page.states()).join(' -> ')}`);
    await page.page.close();
  } finally {
    await relay.close();
  }
});
