// Subscriber: one SSE client connection of the load generator.
//
// It sends `GET /events?topic=T` (over TLS after UseTls), reads the response
// head, removes the chunked coding (ChunkedDecoder) and parses the event stream
// with evsse::StreamParser. Each event's data is "s=<seq> k=<topic> t=<ns> ..."
// (written by the load generator's publisher): the subscriber checks the
// topic, marks the per-topic sequence number as received (duplicates are
// counted), checks that the server's ids increase (an event whose id is not
// after the previous one counts as reordered) and reports the delivery with
// its receive time.
//
// Thread safety: none; lives on the Loop's thread.
#ifndef EVSSE_BENCH_SUBSCRIBER_H_
#define EVSSE_BENCH_SUBSCRIBER_H_

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "evsse/stream_parser.h"
#include "http_codec.h"
#include "loop.h"
#include "tls.h"

namespace evsse::bench {

class Subscriber final : public IoHandler {
 public:
  enum class State { kNew, kConnecting, kHead, kStreaming, kEnded };
  // Why a subscriber ended (kNone while it streams).
  enum class Outcome {
    kNone,
    kShed,           // 200 without a chunked body: the server's load shedding
    kHttpError,      // another status
    kConnectError,   // connect() failed
    kProtocolError,  // malformed head, chunking or event stream
    kServerClosed,   // the server ended or reset the stream
    kClosedByUs,
  };

  // Observer learns what happens to the subscribers; called inside OnIo.
  class Observer {
   public:
    virtual ~Observer() = default;
    // OnReady: status 200 of a stream and its first body bytes arrived.
    virtual void OnReady(Subscriber* s) = 0;
    // OnDelivery: one event of the load generator; `fresh` is false for a
    // sequence number received before.
    virtual void OnDelivery(Subscriber* s, uint64_t seq, int64_t sent_ns,
                            int64_t recv_ns, bool fresh) = 0;
    // OnGap: the server sent its gap event (the cursor was too old).
    virtual void OnGap(Subscriber* s) = 0;
    // OnEnded: the connection is over (outcome() says why); after OnReady
    // or instead of it.
    virtual void OnEnded(Subscriber* s) = 0;
  };

  // `capacity` bounds the per-topic sequence numbers this subscriber
  // tracks (events of its topic); `request` is the whole GET request.
  Subscriber(Loop* loop, Observer* observer, size_t index, size_t topic,
             size_t capacity);
  ~Subscriber() override;

  // Start connects and sends `request`. The string must outlive the
  // handshake. Returns false (outcome kConnectError) if the socket could not
  // even be opened; OnEnded is then not called.
  bool Start(const sockaddr_in& addr, const std::string* request);
  // Close drops the connection with an RST (end of a run).
  void Close();
  // AcceptIdentityBody: a 200 without chunked coding is a stream read until
  // the close (nchan's EventSource answers so), not evsse's load shedding.
  void AcceptIdentityBody() { identity_ok_ = true; }
  // SetReceiveBuffer: SO_RCVBUF for the socket Start opens (0: the
  // kernel's default and autotuning).
  void SetReceiveBuffer(int bytes) { rcvbuf_ = bytes; }
  // SetSource: bind to this local address before connecting (see
  // OpenConnect); nullptr: the kernel's choice.
  void SetSource(const sockaddr_in* source) { source_ = source; }
  // Reset makes an ended subscriber ready for Start again (a reconnect): the
  // received sequence numbers, counters, last event id and retry persist,
  // the connection's state does not.
  void Reset();
  // last_event_id: the id to resume from (Last-Event-ID); retry_ms: the
  // server's last `retry:`, 0 when it sent none.
  const std::string& last_event_id() const { return parser_.last_event_id(); }
  uint64_t retry_ms() const { return parser_.retry().value_or(0); }
  // UseTls: speak TLS (a session of `tls`, which must outlive this
  // subscriber) on the connection Start opens.
  void UseTls(const TlsContext* tls) { tls_ = tls; }
  // tls_error: why the TLS handshake or a record failed (empty otherwise).
  const std::string& tls_error() const { return tls_error_; }
  // Pause stops reading (the socket stays registered without events, so
  // arriving data wakes nobody); Resume reads again. Unread returns the
  // bytes waiting in the socket's receive queue (FIONREAD).
  void Pause();
  void Resume();
  size_t Unread() const;
  // bytes_read: body and head bytes received so far.
  uint64_t bytes_read() const { return bytes_read_; }

  void OnIo(uint32_t events) override;

  size_t index() const { return index_; }
  size_t topic() const { return topic_; }
  State state() const { return state_; }
  Outcome outcome() const { return outcome_; }
  int http_status() const { return http_status_; }
  int error_number() const { return errno_; }
  int64_t connect_ns() const { return connect_ns_; }
  bool got(uint64_t seq) const { return seq < got_.size() && got_[seq]; }
  uint64_t unique() const { return unique_; }
  uint64_t duplicates() const { return duplicates_; }
  // reordered: events whose id was not after the previous event's id.
  uint64_t reordered() const { return reordered_; }
  uint64_t misrouted() const { return misrouted_; }
  bool gap() const { return gap_; }

  // Bookkeeping the load generator keeps per subscriber (replay runs).
  uint64_t expected = 0;
  int64_t done_ns = 0;
  // Reconnecting runs (--reconnect): the node (index into --ports) it is on,
  // how often it lost its stream, and when it last did.
  size_t node = 0;
  uint32_t disconnects = 0;
  int64_t closed_ns = 0;
  std::string resume_request;  // the GET of the current reconnect

 private:
  void FinishConnect();
  void Handshake();
  void WriteRequest();
  ssize_t Recv(char* buf, size_t len);
  void TlsFailed(Outcome outcome);
  void Drop();
  void Consume(std::string_view bytes);
  void ConsumeBody(std::string_view bytes);
  void OnEvent(const StreamParser::Event& e);
  void End(Outcome outcome);

  Loop* loop_;
  Observer* observer_;
  size_t index_;
  size_t topic_;
  int fd_ = -1;
  State state_ = State::kNew;
  Outcome outcome_ = Outcome::kNone;
  int http_status_ = 0;
  int errno_ = 0;
  const std::string* request_ = nullptr;
  size_t request_sent_ = 0;
  int64_t connect_ns_ = 0;
  int64_t recv_ns_ = 0;  // receive time of the bytes being parsed
  uint64_t bytes_read_ = 0;
  int rcvbuf_ = 0;
  const sockaddr_in* source_ = nullptr;
  bool connected_ = false;  // the TCP connect completed
  // TLS: the session (nullptr on plain connections), whether its handshake
  // is done, whether it waits for the socket to be writable.
  const TlsContext* tls_ = nullptr;
  SSL* ssl_ = nullptr;
  bool handshaken_ = false;
  bool tls_want_write_ = false;
  bool tls_out_armed_ = false;  // EPOLLOUT is armed for tls_want_write_
  std::string tls_error_;
  std::string head_;
  ChunkedDecoder chunked_;
  StreamParser parser_;
  std::vector<bool> got_;
  uint64_t unique_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t reordered_ = 0;
  uint64_t misrouted_ = 0;
  // The newest server position seen (evsse "<epoch>.<major>[-<minor>]" or
  // nchan "<time>:<tag>" ids).
  uint64_t last_major_ = 0, last_minor_ = 0;
  bool gap_ = false;
  bool got_first_bytes_ = false;
  bool identity_ok_ = false;  // see AcceptIdentityBody
  bool identity_ = false;     // the body is not chunked
};

}  // namespace evsse::bench

#endif  // EVSSE_BENCH_SUBSCRIBER_H_
