'use strict';
// Shared pieces of the proxy tests: processes started here and stopped by
// pid (a private redis-server, examples/evhttp_hello nodes, Debian's nginx
// run in the foreground with everything in a temp dir), loopback HTTP
// helpers and a condition poller. Paths come from the environment
// (run_test.sh sets them).
const assert = require('node:assert/strict');
const {spawn} = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

const env = {
  node: process.env.EVSSE_EVHTTP_HELLO,
  redis: process.env.EVSSE_REDIS_SERVER,
  nginx: process.env.EVSSE_NGINX || '/usr/sbin/nginx',
  chromium: process.env.EVSSE_CHROMIUM || '/usr/bin/chromium',
  confDir: process.env.EVSSE_CONF_DIR,
  certs: process.env.EVSSE_TEST_CERTS,  // make_test_certs.sh output (h2 test)
};

// Generous: the machine running the tests may be small and shared.
const WAIT_MS = 20000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Fatal: thrown by a waitFor predicate to stop waiting at once.
class Fatal extends Error {}

// waitFor polls `pred` (sync or async) until it returns a truthy value.
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

// Child: a process started here, stopped by its pid only. Whatever is still
// running when this process exits (a failed hook) is killed then.
const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { process.kill(c.pid, 'SIGKILL'); } catch (e) { /* gone already */ }
  }
});
class Child {
  constructor(name, argv, logPath) {
    this.name = name;
    this.logPath = logPath;
    const out = fs.openSync(logPath, 'a');
    this.proc = spawn(argv[0], argv.slice(1), {stdio: ['ignore', out, out]});
    fs.closeSync(out);
    const proc = this.proc;
    children.add(proc);
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        children.delete(proc);
        this.proc = null;
        resolve({code, signal});
      });
      proc.on('error', (e) => {
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

// Redis: a private redis-server on a unix socket, nothing persisted.
class Redis {
  constructor(dir) {
    this.dir = dir;
    this.socket = path.join(dir, 'redis.sock');
  }
  async start() {
    this.child = new Child('redis', [
      env.redis, '--port', '0', '--unixsocket', this.socket,
      '--unixsocketperm', '700', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--daemonize', 'no',
    ], path.join(this.dir, 'redis.log'));
    await waitFor(() => {
      if (!this.child.running()) throw new Fatal(`redis-server exited:\n${this.child.log()}`);
      return fs.existsSync(this.socket) && this.child.log().includes('ready to accept connections');
    }, 'redis-server to accept connections', 10000);
  }
  stop() { return this.child ? this.child.stop('SIGTERM') : Promise.resolve(); }
}

// Node: examples/evhttp_hello on a fixed port (restarts reuse it), on the
// private Redis when `redisSocket` is set (a restarted node then replays what
// was published meanwhile), else on its in-process broker.
class Node {
  constructor(name, dir, port, redisSocket) {
    Object.assign(this, {name, dir, port, redisSocket});
  }
  async start() {
    const logPath = path.join(this.dir, `${this.name}.log`);
    const before = fs.existsSync(logPath) ? fs.readFileSync(logPath, 'utf8').length : 0;
    const argv = [env.node, '--port', String(this.port)];
    if (this.redisSocket) argv.push('--redis', `unix:${this.redisSocket}`);
    this.child = new Child(this.name, argv, logPath);
    await waitFor(() => {
      if (!this.child.running()) throw new Fatal(`${this.name} exited:\n${this.child.log()}`);
      return this.child.log().slice(before).includes('listening on');
    }, `${this.name} to listen`);
  }
  stop(signal) { return this.child.stop(signal); }
}

// publish posts `data` to `topic` on `port` and returns the event's id;
// it retries while the Redis link is still coming up (503).
async function publish(port, topic, data) {
  for (let i = 0; ; i++) {
    const r = await request(port, 'POST', `/publish?topic=${topic}`, {body: data});
    if (r.status === 200) return JSON.parse(r.body).id;
    if (r.status !== 503 || i > 200) {
      throw new Error(`publish ${data}: ${r.status} ${r.body}`);
    }
    await sleep(25);
  }
}

// shippedConf reads conf/NAME and applies `edits` ([regexp, replacement]);
// each regexp must match, so a change of the shipped file is noticed here.
function shippedConf(name, edits) {
  let conf = fs.readFileSync(path.join(env.confDir, name), 'utf8');
  for (const [re, to] of edits) {
    assert.match(conf, re, `conf/${name} has no ${re}`);
    conf = conf.replace(re, to);
  }
  return conf;
}

// Nginx: Debian's nginx in the foreground as our child, with its prefix,
// pid file, logs and temp paths in `dir`; `serverConf` is included in its
// http {} context. When run as root its worker drops to an unprivileged
// user, so `dir` must be world-readable.
class Nginx {
  constructor(dir, port) {
    this.dir = dir;
    this.port = port;
  }
  async start(serverConf) {
    const d = this.dir;
    fs.chmodSync(d, 0o755);
    fs.writeFileSync(path.join(d, 'evsse.conf'), serverConf);
    fs.writeFileSync(path.join(d, 'nginx.conf'), `
worker_processes 1;
error_log ${d}/error.log info;
pid ${d}/nginx.pid;
events { worker_connections 512; }
http {
  access_log ${d}/access.log;
  client_body_temp_path ${d}/client_body;
  proxy_temp_path ${d}/proxy;
  fastcgi_temp_path ${d}/fastcgi;
  uwsgi_temp_path ${d}/uwsgi;
  scgi_temp_path ${d}/scgi;
  include ${d}/evsse.conf;
}
`);
    this.child = new Child('nginx', [
      env.nginx, '-p', d, '-c', path.join(d, 'nginx.conf'), '-e', path.join(d, 'error.log'),
      '-g', 'daemon off;',
    ], path.join(d, 'nginx.out'));
    await waitFor(() => {
      if (!this.child.running()) {
        throw new Fatal(`nginx exited:\n${this.child.log()}\n${this.errorLog()}`);
      }
      return new Promise((resolve) => {
        const c = net.createConnection(this.port, '127.0.0.1');
        c.on('connect', () => { c.destroy(); resolve(true); });
        c.on('error', () => resolve(false));
      });
    }, 'nginx to listen');
  }
  errorLog() {
    const p = path.join(this.dir, 'error.log');
    return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
  }
  stop() { return this.child ? this.child.stop('SIGTERM') : Promise.resolve(); }
}

module.exports = {
  env, WAIT_MS, sleep, Fatal, waitFor, freePort, Child, request, Redis, Node,
  publish, shippedConf, Nginx,
};
