'use strict';
// Shared pieces of the proxy tests: processes started here and stopped by
// pid (a private redis-server, examples/evhttp_hello nodes, Debian's nginx
// run in the foreground with everything in a temp dir), on top of what the
// browser tests share too (tests/browser/harness.js: the condition poller,
// child processes, loopback HTTP, Chromium). Paths come from the
// environment (run_test.sh sets them).
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const harness = require('../browser/harness.js');

const {sleep, Fatal, waitFor, Child, request} = harness;

const env = {
  node: process.env.EVSSE_EVHTTP_HELLO,
  nginx: process.env.EVSSE_NGINX || '/usr/sbin/nginx',
  confDir: process.env.EVSSE_CONF_DIR,
  certs: process.env.EVSSE_TEST_CERTS,  // make_test_certs.sh output (h2 test)
};

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
  ...harness, env, Node, publish, shippedConf, Nginx,
};
