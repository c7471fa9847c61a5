'use strict'
// The npm `eventsource` package over HTTPS against evsse-alerts
// (`listen 127.0.0.1:0 ssl;`), trusting the test CA through
// NODE_EXTRA_CA_CERTS, which node reads at start: run_test.sh --tls writes
// the certificates (tests/support/make_test_certs.sh) and sets it.
//
//   sh tests/js/run_test.sh --tls $(command -v node) build/examples/evsse-alerts
//
// Each test starts its own server and stops it by pid.
//
// Trap of eventsource 2.0.2: with a second argument (eventSourceInitDict),
// certificate verification is off unless it says rejectUnauthorized: true
// (lib/eventsource.js: `!(eventSourceInitDict &&
// !eventSourceInitDict.rejectUnauthorized)`). Every dict here says so.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const https = require('node:https')
const os = require('node:os')
const path = require('node:path')
const EventSource = require('eventsource')

const ALERTS = process.env.EVSSE_ALERTS_BIN
const CERTS = process.env.EVSSE_CERT_DIR
const TOKEN = 'publish-token-0123456789'
const TEST_TIMEOUT_MS = 30000

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function waitUntil (cond, ms, what) {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(10)
  }
}

// startAlerts runs evsse-alerts over TLS and resolves to { base, stop }.
async function startAlerts () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evsse-tls-js-'))
  const conf = path.join(dir, 'alerts.conf')
  fs.writeFileSync(conf, `server {
    listen 127.0.0.1:0 ssl;
    ssl_certificate ${CERTS}/server.pem;
    ssl_certificate_key ${CERTS}/server.key;
    publish_token ${TOKEN};
    endpoint subscribe /alerts/stream { heartbeat 15s; retry 200ms; retry_jitter 0; }
}
`)
  const child = spawn(ALERTS, ['--config', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  child.stdout.on('data', (b) => { log += b })
  child.stderr.on('data', (b) => { log += b })
  await waitUntil(() => /msg=listening addr=127\.0\.0\.1:\d+/.test(log) || child.exitCode !== null,
    10000, 'evsse-alerts to listen')
  const m = log.match(/msg=listening addr=(127\.0\.0\.1:\d+)/)
  assert.ok(m, `evsse-alerts did not start:\n${log}`)
  return {
    base: `https://${m[1]}`,
    stop: () => {
      child.kill('SIGKILL')
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

// postAlert publishes over HTTPS (trusted through NODE_EXTRA_CA_CERTS too).
function postAlert (base, title) {
  const body = JSON.stringify({ severity: 'critical', title, body: 'b', team: 'ops' })
  return new Promise((resolve, reject) => {
    const req = https.request(`${base}/alerts`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${TOKEN}`,
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body)
      }
    }, (res) => {
      let text = ''
      res.on('data', (c) => { text += c })
      res.on('end', () => resolve({ status: res.statusCode, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

test('eventsource over https: the chain is trusted through NODE_EXTRA_CA_CERTS, events arrive exactly, resume with Last-Event-ID',
  { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await startAlerts()
    const es = new EventSource(`${server.base}/alerts/stream?topic=ops`)
    try {
      const got = []
      let errors = 0
      es.addEventListener('critical', (e) => got.push(e))
      es.onerror = () => { errors++ }
      await waitUntil(() => es.readyState === EventSource.OPEN, 10000, 'the stream to open')
      for (const t of ['one', 'two', 'three']) {
        const r = await postAlert(server.base, t)
        assert.equal(r.status, 200, r.body)
      }
      await waitUntil(() => got.length >= 3, 10000, 'three alerts')
      assert.deepEqual(got.map((e) => JSON.parse(e.data).title), ['one', 'two', 'three'])
      assert.equal(errors, 0)
      const last = got[2].lastEventId
      assert.ok(last)
      es.close()

      // Missed while away, replayed on a new TLS connection.
      for (const t of ['four', 'five']) assert.equal((await postAlert(server.base, t)).status, 200)
      const again = new EventSource(`${server.base}/alerts/stream?topic=ops`,
        { rejectUnauthorized: true, headers: { 'Last-Event-ID': last } })
      const replayed = []
      again.addEventListener('critical', (e) => replayed.push(JSON.parse(e.data).title))
      try {
        await waitUntil(() => replayed.length >= 2, 10000, 'the replay')
        assert.deepEqual(replayed, ['four', 'five'])
      } finally {
        again.close()
      }
    } finally {
      es.close()
      server.stop()
    }
  })

test('eventsource over https refuses a chain it does not trust', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = await startAlerts()
  // `ca` replaces node's trust store, NODE_EXTRA_CA_CERTS included: a leaf
  // that did not sign the server's certificate.
  const es = new EventSource(`${server.base}/alerts/stream?topic=ops`,
    { rejectUnauthorized: true, https: { ca: fs.readFileSync(path.join(CERTS, 'wrongname.pem')) } })
  try {
    let error = null
    let messages = 0
    es.onerror = (e) => { error = error || e }
    es.addEventListener('critical', () => { messages++ })
    await waitUntil(() => error !== null, 10000, 'the TLS error')
    assert.notEqual(es.readyState, EventSource.OPEN)
    assert.match(String(error.message), /certificate|verify|issuer/i)
    assert.equal(messages, 0)
  } finally {
    es.close()
    server.stop()
  }
})
