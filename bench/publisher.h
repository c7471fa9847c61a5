// Publisher: one keep-alive HTTP/1.1 connection (optionally over TLS) of the
// load generator to the publish endpoint, with requests pipelined on it.
//
// Responses come back in request order; each is matched with the sequence
// number of the event it acknowledges and handed to the observer with its
// status and body ({"id":"..."} on success).
//
// Thread safety: none; lives on the Loop's thread.
#ifndef EVSSE_BENCH_PUBLISHER_H_
#define EVSSE_BENCH_PUBLISHER_H_

#include <netinet/in.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "loop.h"
#include "tls.h"

namespace evsse::bench {

class Publisher final : public IoHandler {
 public:
  class Observer {
   public:
    virtual ~Observer() = default;
    // OnAck: the response to the request that published event `seq`.
    virtual void OnAck(uint64_t seq, int status, std::string_view body) = 0;
    // OnPublisherError: the connection failed; no more acks will come.
    virtual void OnPublisherError(const std::string& what) = 0;
  };

  Publisher(Loop* loop, Observer* observer);
  ~Publisher() override;

  // Connect opens the connection (a blocking connect and, with `tls`, a
  // blocking TLS handshake: loopback, once per run), then switches it to
  // non-blocking. Returns false with `error`. `tls` must outlive this.
  bool Connect(const sockaddr_in& addr, const TlsContext* tls,
               std::string* error);

  // Send queues the whole request that publishes event `seq` and writes
  // what the socket takes now.
  void Send(uint64_t seq, std::string_view request);

  size_t in_flight() const { return in_flight_.size(); }
  bool failed() const { return fd_ < 0; }

  void OnIo(uint32_t events) override;

 private:
  void Flush();
  void ParseResponses();
  void Fail(const std::string& what);

  Loop* loop_;
  Observer* observer_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;  // TLS session (nullptr: plain)
  bool want_write_ = false;
  std::string out_;
  size_t out_off_ = 0;
  std::string in_;
  size_t in_off_ = 0;
  std::deque<uint64_t> in_flight_;
};

}  // namespace evsse::bench

#endif  // EVSSE_BENCH_PUBLISHER_H_
