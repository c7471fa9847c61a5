'use strict';
// An EventSource in headless Debian Chromium over HTTPS against
// evsse-alerts (`listen 127.0.0.1:0 ssl;` with the test certificate). The
// browser trusts that one certificate by its public key
// (--ignore-certificate-errors-spki-list with spki.txt of
// tests/support/make_test_certs.sh), over a fresh user-data dir. The page's
// EventSource gets exactly the alerts published over HTTPS, with their ids;
// without the flag, the browser refuses the certificate.
//
// Run by ctest as browser_tls_page_test through run_test.sh --tls.
const test = require('node:test');
const assert = require('node:assert/strict');
const {spawn} = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const {waitFor, launchChromium} = require('./harness.js');

const ALERTS_BIN = process.env.EVSSE_ALERTS_BIN;
const CERTS = process.env.EVSSE_CERT_DIR;
const TOKEN = 'browser-test-token-0123456789';

function postAlert(base, title) {
  const body = JSON.stringify({severity: 'critical', title, body: 'b', team: 'ops'});
  return new Promise((resolve, reject) => {
    const req = https.request(`${base}/alerts`, {
      method: 'POST',
      ca: fs.readFileSync(path.join(CERTS, 'ca.pem')),
      headers: {
        'Authorization': `Bearer ${TOKEN}`,
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
      },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('Chromium EventSource over https to evsse-alerts', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evsse-tls-browser-'));
  const conf = path.join(dir, 'alerts.conf');
  fs.writeFileSync(conf, `server {
    listen 127.0.0.1:0 ssl;
    ssl_certificate ${CERTS}/server.pem;
    ssl_certificate_key ${CERTS}/server.key;
    publish_token ${TOKEN};
    endpoint subscribe /alerts/stream { heartbeat 15s; }
}
`);
  const server = spawn(ALERTS_BIN, ['--config', conf],
                       {stdio: ['ignore', 'pipe', 'pipe']});
  let log = '';
  server.stdout.on('data', (b) => { log += b; });
  server.stderr.on('data', (b) => { log += b; });
  let context;
  try {
    const m = await waitFor(
        () => log.match(/msg=listening addr=(127\.0\.0\.1:\d+)/) ||
              server.exitCode !== null && Promise.reject(new Error(log)),
        'evsse-alerts to listen');
    const base = `https://${m[1]}`;
    const spki = fs.readFileSync(path.join(CERTS, 'spki.txt'), 'utf8').trim();
    context = await launchChromium({
      profile: path.join(dir, 'profile'),
      args: [`--ignore-certificate-errors-spki-list=${spki}`],
    });
    const page = await context.newPage();
    const response = await page.goto(`${base}/`);
    assert.equal(response.status(), 200);
    assert.equal(new URL(page.url()).protocol, 'https:');
    await page.evaluate(() => {
      window.__got = [];
      window.__open = false;
      const es = new EventSource('/alerts/stream?topic=ops');
      es.onopen = () => { window.__open = true; };
      es.addEventListener('critical', (e) => {
        window.__got.push({title: JSON.parse(e.data).title, id: e.lastEventId});
      });
    });
    await waitFor(() => page.evaluate(() => window.__open), 'the stream to open');
    for (const t of ['one', 'two', 'three'])
      assert.equal(await postAlert(base, t), 200);
    const got = await waitFor(async () => {
      const g = await page.evaluate(() => window.__got.slice());
      return g.length >= 3 && g;
    }, 'three alerts in the page');
    assert.deepEqual(got.map((e) => e.title), ['one', 'two', 'three']);
    for (const e of got) assert.ok(e.id, 'every event has an id');
    await context.close();
    context = null;

    // Without the SPKI flag the same browser refuses the test certificate:
    // the trust above came from the flag, not from ignoring errors.
    context = await launchChromium({profile: path.join(dir, 'plain')});
    const refused = await context.newPage();
    await assert.rejects(refused.goto(`${base}/`), /ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    if (context) await context.close();
    server.kill('SIGKILL');
    fs.rmSync(dir, {recursive: true, force: true});
  }
});
