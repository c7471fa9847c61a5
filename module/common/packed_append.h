// Appending a stream's next write behind bytes the socket has not taken yet,
// without a block per write (header-only, for the adapters).
//
// Why: libevent gives each write its own block (a chain of at least 1 KiB,
// rounded up to a power of two) and moving a buffer moves its blocks, so a
// reader that stopped reading held about 1 KiB of heap per small write:
// 2.8x max_queued_bytes at 350-byte events, 6.7x at 150 (bench/README.md,
// "Dead peers and slow readers"). Copying the small pieces into the output's
// last block packs them (about 1.05x); large pieces (events added by
// reference, shared with the history) are still moved, never copied.
#ifndef EVSSE_SRC_PACKED_APPEND_H_
#define EVSSE_SRC_PACKED_APPEND_H_

#include <event2/buffer.h>

#include <cstddef>

namespace evsse::internal {

// Pieces smaller than this are copied; the rest is moved.
constexpr size_t kPackBelow = 1024;

// AppendPacked moves all of `data` to the end of `out`, copying its small
// pieces into out's last block (libevent then grows out in blocks of up to
// 4 KiB, filled to the end).
inline void AppendPacked(evbuffer* out, evbuffer* data) {
  evbuffer_iovec v;
  while (evbuffer_peek(data, -1, nullptr, &v, 1) > 0) {
    if (v.iov_len == 0) {
      evbuffer_drain(data, 0);
      break;
    }
    if (v.iov_len < kPackBelow) {
      evbuffer_add(out, v.iov_base, v.iov_len);
      evbuffer_drain(data, v.iov_len);
    } else {
      evbuffer_remove_buffer(data, out, v.iov_len);
    }
  }
}

}  // namespace evsse::internal

#endif  // EVSSE_SRC_PACKED_APPEND_H_
