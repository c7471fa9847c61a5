'use strict';
// What the browser tests (this folder) and the proxy tests (tests/proxy,
// through rig.js) share: a condition poller, free loopback ports, child
// processes stopped by their pid only, a loopback HTTP request, a private
// redis-server, and headless Debian Chromium started the same way
// everywhere. playwright-core
// comes from this folder's node_modules (install.sh).
const {spawn} = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

const CHROMIUM = process.env.EVSSE_CHROMIUM || '/usr/bin/chromium';
// Generous: the machine running the tests may be small and shared, and
// Chromium is heavy.
const WAIT_MS = 20000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Fatal: thrown by a waitFor predicate to stop waiting at once.
class Fatal extends Error {}

// waitFor polls `pred` (sync or async) until it returns a truthy value; a
// predicate that throws is asked again (but a Fatal ends the wait).
async function waitFor(pred, what, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await pred();
      if (last) return last;
    } catch (e) {
      if (e instanceof Fatal) throw e;
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
                      (last instanceof Error ? `: ${last.message}` : ''));
    }
    await sleep(20);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Child: a process started here (output appended to `logPath`, `env` added
// to this process's environment), stopped by its pid only. Whatever is
// still running when this process exits (a failed hook) is killed then.
const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { process.kill(c.pid, 'SIGKILL'); } catch (e) { /* gone already */ }
  }
});
class Child {
  constructor(name, argv, logPath, env = {}) {
    this.name = name;
    this.logPath = logPath;
    const out = fs.openSync(logPath, 'a');
    this.proc = spawn(argv[0], argv.slice(1), {
      stdio: ['ignore', out, out],
      env: {...process.env, ...env},
    });
    fs.closeSync(out);
    const proc = this.proc;
    children.add(proc);
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        children.delete(proc);
        this.proc = null;
        resolve({code, signal});
      });
      proc.on('error', (e) => {  // could not start at all
        children.delete(proc);
        this.proc = null;
        fs.appendFileSync(logPath, `spawn ${argv[0]}: ${e.message}\n`);
        resolve({code: null, signal: null});
      });
    });
  }
  log() { return fs.existsSync(this.logPath) ? fs.readFileSync(this.logPath, 'utf8') : ''; }
  running() { return this.proc !== null; }
  async stop(signal = 'SIGTERM') {
    if (this.proc) process.kill(this.proc.pid, signal);
    return this.exited;
  }
}

// request: one HTTP request to 127.0.0.1:port; resolves {status, headers,
// body} (the body as text).
function request(port, method, target, {headers = {}, body} = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({host: '127.0.0.1', port, method, path: target,
                              headers, agent: false, timeout: 10000}, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({status: res.statusCode, headers: res.headers, body: text}));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${target} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

// Redis: a private redis-server (EVSSE_REDIS_SERVER) on a unix socket in
// `dir`, nothing persisted.
class Redis {
  constructor(dir) {
    this.dir = dir;
    this.socket = path.join(dir, 'redis.sock');
  }
  async start() {
    this.child = new Child('redis', [
      process.env.EVSSE_REDIS_SERVER, '--port', '0', '--unixsocket', this.socket,
      '--unixsocketperm', '700', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--daemonize', 'no',
    ], path.join(this.dir, 'redis.log'));
    // The socket file exists before listen(): wait for an answer instead.
    await waitFor(async () => (await this.command(['PING'])) === 'PONG',
                  'redis-server to answer PING', 10000);
  }
  // command sends one command and returns a simple string, an integer or
  // throws on an error reply (all this test needs).
  command(args) {
    return new Promise((resolve, reject) => {
      const c = net.createConnection(this.socket);
      let buf = '';
      c.setTimeout(5000, () => c.destroy(new Error('redis command timed out')));
      c.on('error', reject);
      c.on('connect', () => {
        let req = `*${args.length}\r\n`;
        for (const a of args) req += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
        c.write(req);
      });
      c.on('data', (d) => {
        buf += d.toString('utf8');
        const end = buf.indexOf('\r\n');
        if (end < 0) return;
        const line = buf.slice(1, end);
        c.end();
        if (buf[0] === '+') resolve(line);
        else if (buf[0] === ':') resolve(Number(line));
        else reject(new Error(`redis ${args[0]}: ${buf.slice(0, end)}`));
      });
    });
  }
  stop() { return this.child ? this.child.stop('SIGTERM') : Promise.resolve(); }
}

// launchChromium: headless Debian Chromium (CHROMIUM) through
// playwright-core. With `profile` (a user-data dir) it resolves a
// persistent BrowserContext, without it a Browser. `args`: more switches,
// e.g. --ignore-certificate-errors-spki-list=HASH.
function launchChromium({profile, args = []} = {}) {
  const {chromium} = require('playwright-core');
  const base = ['--no-sandbox', '--disable-gpu', '--disable-background-networking'];
  if (profile) {
    return chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', ...base, ...args],
    });
  }
  return chromium.launch({executablePath: CHROMIUM, headless: true, args: [...base, ...args]});
}

module.exports = {
  CHROMIUM, WAIT_MS, sleep, Fatal, waitFor, freePort, Child, request, Redis,
  launchChromium,
};
