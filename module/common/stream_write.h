// A stream's next write on a plain (not TLS) connection, as both HTTP
// adapters make it (header-only, for the adapters). The chunk framing is
// the HTTP library's own ("%zx\r\n" data "\r\n" on a chunked reply).
//
// Why: behind unsent bytes (the reply head, or what a slow reader has not
// taken) the write is appended packed (packed_append.h) and write interest
// goes on; the library's write callback follows when it is out. With
// nothing queued it is written at once: the usual way costs two epoll_ctl
// calls per write (write interest on, a loop turn, off again), as much
// again as the send itself; write interest goes on only for what the socket
// did not take.
#ifndef EVSSE_SRC_STREAM_WRITE_H_
#define EVSSE_SRC_STREAM_WRITE_H_

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <cstddef>

#include "packed_append.h"

namespace evsse::internal {

// WriteStream moves all of `data` to `bev`'s output, as one chunk when
// `chunked`, and writes it now when nothing was queued before it.
inline void WriteStream(bufferevent* bev, evbuffer* data, bool chunked) {
  evbuffer* out = bufferevent_get_output(bev);
  size_t n = evbuffer_get_length(data);
  if (evbuffer_get_length(out) > 0) {
    if (n == 0) return;
    if (chunked) evbuffer_add_printf(out, "%zx\r\n", n);
    AppendPacked(out, data);
    if (chunked) evbuffer_add(out, "\r\n", 2);
    bufferevent_enable(bev, EV_WRITE);
    return;
  }
  bufferevent_disable(bev, EV_WRITE);
  if (n == 0) return;
  if (chunked) evbuffer_add_printf(out, "%zx\r\n", n);
  evbuffer_add_buffer(out, data);
  if (chunked) evbuffer_add(out, "\r\n", 2);
  // A bufferevent keeps the front of its output frozen outside its own
  // write callback, which unfreezes it around the write just like this.
  evbuffer_unfreeze(out, 1);
  evbuffer_write(out, bufferevent_getfd(bev));
  evbuffer_freeze(out, 1);
  if (evbuffer_get_length(out) > 0) bufferevent_enable(bev, EV_WRITE);
}

}  // namespace evsse::internal

#endif  // EVSSE_SRC_STREAM_WRITE_H_
