#!/usr/bin/env python3
"""delay_relay: a TCP relay that adds a fixed one-way delay and cuts
connections now and then. Used by dead_peer_test.sh in its router namespace,
because this kernel has no sch_netem: the delay is added per chunk of bytes
(each direction, in order), the packet loss comes from iptables on the
router's interfaces, and the cuts make the client resume with Last-Event-ID.

usage: delay_relay.py LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS \
           CUT_MIN_S CUT_MAX_S SEED
CUT_MAX_S 0 disables the cuts. Prints "ready" once listening, one line per
cut; runs until killed.
"""
import asyncio
import random
import sys


def split(hp):
    host, port = hp.rsplit(":", 1)
    return host, int(port)


async def pump(reader, writer, delay, loop):
    # Chunks leave in order, each `delay` after it arrived: a queue drained by
    # one writer task keeps the order without holding back later reads.
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((loop.time() + delay, data or None))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()


async def main():
    listen, target = split(sys.argv[1]), split(sys.argv[2])
    delay = int(sys.argv[3]) / 1000.0
    cut_min, cut_max = float(sys.argv[4]), float(sys.argv[5])
    rng = random.Random(int(sys.argv[6]))
    loop = asyncio.get_running_loop()

    async def handle(c_reader, c_writer):
        try:
            s_reader, s_writer = await asyncio.open_connection(*target)
        except OSError:
            c_writer.close()
            return
        both = asyncio.gather(pump(c_reader, s_writer, delay, loop),
                              pump(s_reader, c_writer, delay, loop))
        try:
            if cut_max > 0:
                life = rng.uniform(cut_min, cut_max)
                await asyncio.wait_for(both, life)
            else:
                await both
        except asyncio.TimeoutError:
            print("cut after %.1f s" % life, flush=True)
        except (ConnectionError, OSError):
            pass
        for w in (c_writer, s_writer):
            w.close()

    server = await asyncio.start_server(handle, *listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
