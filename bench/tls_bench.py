#!/usr/bin/env python3
"""TLS on the server: what it costs evsse, measured from the outside.

Runs examples/evhttp_hello (or evhtp_hello, or --server nchan: nginx +
nchan as bench/compare.sh configures it, TLS terminated by nginx with the
same certificate) with and without TLS on 127.0.0.1 and drives it with Python asyncio clients (the ssl
module, verifying the test CA of tests/support/make_test_certs.sh):

  fanout  N subscribers on one topic, M events published back to back over
          one keep-alive connection (each awaited); the server's CPU
          (utime+stime from /proc) from the first publish to the last
          delivery, per 10^6 deliveries.
  lone    the same with one event every --lone-gap-ms, so that every event
          leaves alone (no coalescing): the per-delivery cost of a write.
  idle    N subscribers that only connect; the server's RSS growth per
          subscriber after --idle-wait-s.

Prints one JSON line per run. The client shares the machine's cores with
the server; only the server's own CPU is counted.

  python3 bench/tls_bench.py --build build-rel [--server evhttp_hello]
      [--scenario fanout|lone|idle] [--tls on|off] [--subscribers N]
      [--events M] [--repeat R] [--smoke]
"""
import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICKS = os.sysconf('SC_CLK_TCK')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def cpu_s(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


NCHAN_CONF = """load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
worker_processes 1;
worker_rlimit_nofile 19000;
error_log {dir}/error.log warn;
events {{ worker_connections 18000; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 3600s;
  send_timeout 3600s;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  nchan_message_buffer_length 6000;
  nchan_message_timeout 1h;
  nchan_subscriber_timeout 0;
  server {{
    listen 127.0.0.1:{port} {ssl} backlog=1024;
    {certs}
    location = /events {{
      nchan_subscriber eventsource;
      nchan_channel_id $arg_topic;
      nchan_subscriber_first_message newest;
    }}
    location = /publish {{
      nchan_publisher;
      nchan_channel_id $arg_topic;
    }}
  }}
}}
"""


class Nchan:
    """nginx + nchan (bench/compare.sh's configuration), TLS terminated by
    nginx itself with the same certificate; the single worker is measured."""

    def __init__(self, tls, certs):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix='evsse-tls-nchan-')
        os.chmod(self.dir, 0o755)
        conf = os.path.join(self.dir, 'nginx.conf')
        with open(conf, 'w') as f:
            f.write(NCHAN_CONF.format(
                dir=self.dir, port=self.port, ssl='ssl' if tls else '',
                certs=(f'ssl_certificate {certs}/server.pem; '
                       f'ssl_certificate_key {certs}/server.key; '
                       'ssl_protocols TLSv1.2 TLSv1.3;') if tls else ''))
        self.master = subprocess.Popen(
            ['nginx', '-p', self.dir, '-c', conf, '-e', f'{self.dir}/error.log',
             '-g', f'daemon off; pid {self.dir}/nginx.pid;'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        self.pid = None
        while time.time() < deadline and self.pid is None:
            out = subprocess.run(['ps', '--ppid', str(self.master.pid), '-o',
                                  'pid='], capture_output=True, text=True)
            if out.stdout.strip():
                self.pid = int(out.stdout.split()[0])
            time.sleep(0.05)
        wait_port(self.port)

    def stop(self):
        # SIGTERM: nginx's fast shutdown stops its worker too; then both by
        # pid, should either still run.
        self.master.terminate()
        try:
            self.master.wait(5)
        except subprocess.TimeoutExpired:
            self.master.kill()
            self.master.wait()
        if self.pid:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_port(port):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError('server did not start')


class Server:
    def __init__(self, binary, tls, certs):
        self.port = free_port()
        args = [binary, '--port', str(self.port),
                '--history-max-bytes', '0'] if 'evhttp' in binary else \
               [binary, '--port', str(self.port)]
        if tls:
            args += ['--tls-cert', f'{certs}/server.pem',
                     '--tls-key', f'{certs}/server.key']
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stderr=self.log,
                                     stdout=subprocess.DEVNULL)
        self.pid = self.proc.pid
        wait_port(self.port)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Sub:
    """One subscriber: counts the events (their id lines) it receives."""

    def __init__(self):
        self.count = 0
        self.ready = asyncio.Event()
        self.tail = b''
        self.writer = None

    async def run(self, port, ctx, topic):
        reader, self.writer = await asyncio.open_connection(
            '127.0.0.1', port, ssl=ctx,
            server_hostname='localhost' if ctx else None,
            limit=1 << 20)
        self.writer.write(f'GET /events?topic={topic} HTTP/1.1\r\n'
                          'Host: localhost\r\n'
                          'Accept: text/event-stream\r\n\r\n'.encode())
        while True:
            data = await reader.read(65536)
            if not data:
                return
            buf = self.tail + data
            self.count += buf.count(b'\nid: ') - self.tail.count(b'\nid: ')
            self.tail = buf[-8:]
            if not self.ready.is_set() and b'\r\n\r\n' in buf:
                self.ready.set()  # the head (and evsse's retry line)


async def publisher(port, ctx):
    reader, writer = await asyncio.open_connection(
        '127.0.0.1', port, ssl=ctx,
        server_hostname='localhost' if ctx else None)

    async def publish(topic, body):
        writer.write((f'POST /publish?topic={topic} HTTP/1.1\r\n'
                      f'Host: localhost\r\nContent-Length: {len(body)}\r\n'
                      '\r\n').encode() + body)
        head = await reader.readuntil(b'\r\n\r\n')
        length = 0
        for line in head.split(b'\r\n'):
            if line.lower().startswith(b'content-length:'):
                length = int(line.split(b':')[1])
        await reader.readexactly(length)
        if not head.startswith(b'HTTP/1.1 2'):  # nchan: 201/202
            raise RuntimeError(head.decode(errors='replace'))
    return publish, writer


async def connect_all(n, port, ctx, topic, window=200):
    subs = [Sub() for _ in range(n)]
    tasks = []
    sem = asyncio.Semaphore(window)

    async def one(s):
        async with sem:
            t = asyncio.ensure_future(s.run(port, ctx, topic))
            tasks.append(t)
            await asyncio.wait_for(s.ready.wait(), 60)
    await asyncio.gather(*(one(s) for s in subs))
    return subs, tasks


async def scenario(args, server, ctx):
    pid = server.pid
    result = {}
    if args.scenario == 'idle':
        await asyncio.sleep(0.5)
        before = rss_kb(pid)
        subs, tasks = await connect_all(args.subscribers, server.port, ctx, 'idle')
        await asyncio.sleep(args.idle_wait_s)
        after = rss_kb(pid)
        result = {'rss_before_kb': before, 'rss_after_kb': after,
                  'rss_per_subscriber_b': round((after - before) * 1024 /
                                                args.subscribers)}
    else:
        subs, tasks = await connect_all(args.subscribers, server.port, ctx, 'news')
        publish, pw = await publisher(server.port, ctx)
        body = b'x' * args.bytes
        await publish('warm', body)
        start_counts = sum(s.count for s in subs)
        c0, t0 = cpu_s(pid), time.monotonic()
        for _ in range(args.events):
            await publish('news', body)
            if args.scenario == 'lone':
                await asyncio.sleep(args.lone_gap_ms / 1000)
        want = args.events * args.subscribers
        deadline = time.monotonic() + 120
        while sum(s.count for s in subs) - start_counts < want:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        c1, t1 = cpu_s(pid), time.monotonic()
        got = sum(s.count for s in subs) - start_counts
        result = {'deliveries': got, 'lost': want - got,
                  'seconds': round(t1 - t0, 3),
                  'deliveries_per_s': round(got / (t1 - t0)),
                  'server_cpu_s': round(c1 - c0, 3),
                  'server_cpu_s_per_1e6': round((c1 - c0) / max(got, 1) * 1e6, 2)}
        pw.close()
    for s in subs:
        if s.writer:
            s.writer.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--build', default='build-rel')
    ap.add_argument('--server', default='evhttp_hello')
    ap.add_argument('--scenario', default='fanout',
                    choices=['fanout', 'lone', 'idle'])
    ap.add_argument('--tls', default='on', choices=['on', 'off'])
    ap.add_argument('--subscribers', type=int, default=1000)
    ap.add_argument('--events', type=int, default=200)
    ap.add_argument('--bytes', type=int, default=100)
    ap.add_argument('--lone-gap-ms', type=float, default=20)
    ap.add_argument('--idle-wait-s', type=float, default=2)
    ap.add_argument('--repeat', type=int, default=1)
    ap.add_argument('--smoke', action='store_true')
    args = ap.parse_args()
    if args.smoke:
        args.subscribers, args.events, args.idle_wait_s = 20, 20, 0.2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    binary = os.path.join(args.build, 'examples', args.server)
    with tempfile.TemporaryDirectory() as certs:
        subprocess.run(['bash', f'{ROOT}/tests/support/make_test_certs.sh',
                        certs], check=True, stdout=subprocess.DEVNULL)
        ctx = None
        if args.tls == 'on':
            ctx = ssl.create_default_context(cafile=f'{certs}/ca.pem')
        for _ in range(args.repeat):
            if args.server == 'nchan':
                server = Nchan(args.tls == 'on', certs)
            else:
                server = Server(binary, args.tls == 'on', certs)
            try:
                r = asyncio.run(scenario(args, server, ctx))
            finally:
                server.stop()
            print(json.dumps({'name': f'tls_{args.scenario}', 'server': args.server,
                              'tls': args.tls, 'subscribers': args.subscribers,
                              'events': args.events if args.scenario != 'idle' else 0,
                              'bytes': args.bytes, **r}), flush=True)


if __name__ == '__main__':
    main()
