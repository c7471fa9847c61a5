'use strict';
// conf/nginx-evsse-h2.conf: Debian's nginx terminating TLS and HTTP/2 in
// front of examples/evhttp_hello (plain HTTP/1.1), with the certificates of
// tests/support/make_test_certs.sh (run_test.sh makes them in a temp dir).
//
// 1. curl --http2 --cacert ca.pem: ALPN selects h2, the response is
//    HTTP/2 200 text/event-stream and published events arrive on it.
// 2. Headless Chromium (trusting the test key through
//    --ignore-certificate-errors-spki-list) opens TEN EventSources to the
//    one origin; over HTTP/1.1 only six could be open at once, so all ten
//    receiving their events needs HTTP/2. nginx's access log of the stream
//    location then shows all ten on one HTTP/2.0 connection.
//
// Run by ctest as proxy_nginx_h2_test through run_test.sh.
const test = require('node:test');
const assert = require('node:assert/strict');
const {spawn} = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  env, waitFor, freePort, Node, publish, shippedConf, Nginx, launchChromium,
} = require('./rig.js');

const STREAMS = 10;  // more than Chromium's six HTTP/1.1 connections per host
const rig = {};

test.before(async () => {
  assert.ok(env.certs && fs.existsSync(path.join(env.certs, 'server.pem')),
            'EVSSE_TEST_CERTS must hold make_test_certs.sh output');
  rig.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evsse-h2-'));
  fs.chmodSync(rig.dir, 0o755);
  rig.node = new Node('node', rig.dir, await freePort(), null);
  await rig.node.start();
  const ngDir = path.join(rig.dir, 'nginx');
  fs.mkdirSync(ngDir);
  rig.nginx = new Nginx(ngDir, await freePort());
  rig.accessLog = path.join(ngDir, 'evsse-access.log');
  await rig.nginx.start(shippedConf('nginx-evsse-h2.conf', [
    [/server 127\.0\.0\.1:8080;/, `server 127.0.0.1:${rig.node.port};`],
    [/listen 443 ssl http2;/, `listen 127.0.0.1:${rig.nginx.port} ssl http2;`],
    [/ssl_certificate \S+;/, `ssl_certificate ${env.certs}/server.pem;`],
    [/ssl_certificate_key \S+;/, `ssl_certificate_key ${env.certs}/server.key;`],
    [/location \/alerts\/stream \{/, 'location /events {'],
    [/\/var\/log\/nginx\/evsse-access\.log/, rig.accessLog],
  ]));
  rig.origin = `https://127.0.0.1:${rig.nginx.port}`;
  console.log(`  nginx (TLS, h2) :${rig.nginx.port} -> evhttp_hello :${rig.node.port}`);
});

test.after(async () => {
  if (rig.curl && rig.curl.exitCode === null) rig.curl.kill('SIGKILL');
  if (rig.browser) await rig.browser.close().catch(() => {});
  if (rig.nginx) await rig.nginx.stop();
  if (rig.node?.child?.running()) await rig.node.stop('SIGKILL');
  if (rig.dir && !process.env.EVSSE_KEEP_TMP) fs.rmSync(rig.dir, {recursive: true, force: true});
});

test('curl --http2 negotiates h2 and receives the stream', async () => {
  const curl = spawn('curl', [
    '-sS', '-v', '-N', '--http2', '--cacert', path.join(env.certs, 'ca.pem'),
    '-H', 'Accept: text/event-stream', `${rig.origin}/events?topic=curl`,
  ], {stdio: ['ignore', 'pipe', 'pipe']});
  rig.curl = curl;
  let out = '';
  let err = '';
  curl.stdout.on('data', (d) => { out += d; });
  curl.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => curl.on('exit', resolve));
  // The head came through: the stream is subscribed.
  await waitFor(() => /^retry: \d+$/m.test(out), `the stream's retry line (curl -v:\n${err})`);
  for (let i = 1; i <= 3; i++) await publish(rig.node.port, 'curl', `over-h2-${i}`);
  await waitFor(() => out.includes('data: over-h2-3\n'), 'three events through curl');
  curl.kill('SIGTERM');
  await exited;
  assert.deepEqual(out.match(/^data: .*$/mg),
                   ['data: over-h2-1', 'data: over-h2-2', 'data: over-h2-3']);
  assert.match(err, /ALPN: server accepted h2/, 'ALPN must select h2');
  assert.match(err, /^< HTTP\/2 200/m);
  assert.match(err, /^< content-type: text\/event-stream/mi);
  assert.match(err, /SSL certificate verify ok/);
});

test(`Chromium opens ${STREAMS} EventSources to one origin over one h2 connection`,
     {timeout: 120000}, async () => {
  const spki = fs.readFileSync(path.join(env.certs, 'spki.txt'), 'utf8').trim();
  rig.browser = await launchChromium({
    args: [`--ignore-certificate-errors-spki-list=${spki}`],
  });
  const page = await rig.browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.route(`${rig.origin}/h2-test-page`, (route) => route.fulfill({
    status: 200, contentType: 'text/html', body: '<!doctype html><title>h2</title>',
  }));
  await page.goto(`${rig.origin}/h2-test-page`);
  await page.evaluate((n) => {
    window.streams = [];
    for (let k = 0; k < n; k++) {
      const s = {open: false, got: [], errors: 0};
      s.es = new EventSource(`/events?topic=tab-${k}`);
      s.es.onopen = () => { s.open = true; };
      s.es.onerror = () => { s.errors++; };
      s.es.onmessage = (e) => s.got.push(e.data);
      window.streams.push(s);
    }
  }, STREAMS);
  const states = () => page.evaluate(
      () => window.streams.map((s) => ({open: s.open, got: s.got.slice(), errors: s.errors})));
  await waitFor(async () => (await states()).every((s) => s.open),
                `all ${STREAMS} EventSources to open`);
  for (let k = 0; k < STREAMS; k++) await publish(rig.node.port, `tab-${k}`, `to-tab-${k}`);
  await waitFor(async () => (await states()).every((s) => s.got.length === 1),
                `an event on each of the ${STREAMS} EventSources`);
  const final = await states();
  final.forEach((s, k) => {
    assert.deepEqual(s.got, [`to-tab-${k}`], `EventSource ${k}`);
    assert.equal(s.errors, 0, `EventSource ${k} errors`);
  });
  const proto = await page.evaluate(
      () => performance.getEntriesByType('navigation')[0]?.nextHopProtocol);
  console.log(`  page navigation protocol: ${proto} (served by the test's route)`);
  assert.deepEqual(pageErrors, []);

  // nginx logs each stream when it ends: close them and read the log.
  await page.evaluate(() => window.streams.forEach((s) => s.es.close()));
  const lines = await waitFor(() => {
    const text = fs.existsSync(rig.accessLog) ? fs.readFileSync(rig.accessLog, 'utf8') : '';
    const l = text.split('\n').filter((x) => x.includes('"GET /events"'));
    return l.length >= STREAMS + 1 ? l : null;  // + curl's
  }, 'nginx to log the closed streams');
  const browserLines = lines.filter((l) => / HTTP\/2\.0 conn=\d+$/.test(l));
  assert.equal(browserLines.length, STREAMS + 1, `every stream over HTTP/2:\n${lines.join('\n')}`);
  const conns = new Map();
  for (const l of browserLines) {
    const c = l.match(/conn=(\d+)$/)[1];
    conns.set(c, (conns.get(c) || 0) + 1);
  }
  // curl's stream had a connection of its own; the page's ten share one.
  assert.ok([...conns.values()].includes(STREAMS),
            `${STREAMS} streams on one connection:\n${lines.join('\n')}`);
});
