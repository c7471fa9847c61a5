#include "subscriber.h"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace evsse::bench {
namespace {

// ParseField reads "<key>=<digits>" at the start of `s` (after spaces) and
// advances past it. Returns false when it is not there.
bool ParseField(std::string_view* s, char key, uint64_t* out) {
  while (!s->empty() && s->front() == ' ') s->remove_prefix(1);
  if (s->size() < 3 || (*s)[0] != key || (*s)[1] != '=') return false;
  s->remove_prefix(2);
  uint64_t v = 0;
  size_t i = 0;
  for (; i < s->size() && (*s)[i] >= '0' && (*s)[i] <= '9'; ++i)
    v = v * 10 + static_cast<uint64_t>((*s)[i] - '0');
  if (i == 0) return false;
  s->remove_prefix(i);
  *out = v;
  return true;
}

// ParsePosition reads the position of an evsse id "<epoch>.<major>[-<minor>]"
// or of an nchan id "<time>:<tag>" (ids are opaque to clients; a benchmark
// may peek).
bool ParsePosition(std::string_view id, uint64_t* major, uint64_t* minor) {
  size_t dot = id.rfind('.');
  char minor_sep = '-';
  if (dot == std::string_view::npos && id.find(':') != std::string_view::npos) {
    dot = std::string_view::npos;  // nchan: the whole id is the position
    minor_sep = ':';
  } else if (dot == std::string_view::npos) {
    return false;
  }
  std::string_view p = dot == std::string_view::npos ? id : id.substr(dot + 1);
  uint64_t* out = major;
  *major = *minor = 0;
  bool digits = false;
  for (char c : p) {
    if (c == minor_sep && out == major && digits) {
      out = minor;
    } else if (c >= '0' && c <= '9') {
      *out = *out * 10 + static_cast<uint64_t>(c - '0');
      digits = true;
    } else {
      return false;
    }
  }
  return digits;
}

constexpr size_t kReadBuffer = 64 * 1024;

}  // namespace

Subscriber::Subscriber(Loop* loop, Observer* observer, size_t index,
                       size_t topic, size_t capacity)
    : loop_(loop),
      observer_(observer),
      index_(index),
      topic_(topic),
      got_(capacity, false) {
  parser_.on_event = [this](const StreamParser::Event& e) { OnEvent(e); };
}

Subscriber::~Subscriber() { Drop(); }

void Subscriber::Drop() {
  TlsFree(ssl_);
  ssl_ = nullptr;
  if (fd_ >= 0) CloseReset(fd_);
  fd_ = -1;
}

bool Subscriber::Start(const sockaddr_in& addr, const std::string* request) {
  request_ = request;
  connect_ns_ = NowNs();
  bool in_progress = false;
  fd_ = OpenConnect(addr, &in_progress, rcvbuf_, source_);
  if (fd_ < 0) {
    errno_ = errno;
    state_ = State::kEnded;
    outcome_ = Outcome::kConnectError;
    return false;
  }
  if (tls_ != nullptr && (ssl_ = tls_->NewSession(fd_)) == nullptr) {
    tls_error_ = "SSL_new: " + TlsLastError(nullptr);
    Drop();
    state_ = State::kEnded;
    outcome_ = Outcome::kConnectError;
    return false;
  }
  connected_ = !in_progress;
  state_ = State::kConnecting;
  loop_->Add(fd_, in_progress ? EPOLLOUT : EPOLLIN, this);
  if (!in_progress) {
    if (ssl_ != nullptr)
      Handshake();
    else
      WriteRequest();
  }
  return true;
}

void Subscriber::Reset() {
  Drop();
  state_ = State::kNew;
  outcome_ = Outcome::kNone;
  http_status_ = 0;
  errno_ = 0;
  request_ = nullptr;
  request_sent_ = 0;
  connected_ = false;
  handshaken_ = false;
  tls_want_write_ = false;
  tls_out_armed_ = false;
  tls_error_.clear();
  head_.clear();
  chunked_ = ChunkedDecoder();
  parser_.Finish();
  got_first_bytes_ = false;
  identity_ = false;
}

void Subscriber::Close() {
  if (fd_ < 0) return;
  Drop();
  if (state_ != State::kEnded) {
    state_ = State::kEnded;
    outcome_ = Outcome::kClosedByUs;
  }
}

void Subscriber::Pause() {
  if (fd_ >= 0 && state_ == State::kStreaming) loop_->Modify(fd_, 0, this);
}

void Subscriber::Resume() {
  if (fd_ >= 0 && state_ == State::kStreaming) {
    tls_out_armed_ = false;
    loop_->Modify(fd_, EPOLLIN, this);
  }
}

size_t Subscriber::Unread() const {
  int n = 0;
  if (fd_ < 0 || ioctl(fd_, FIONREAD, &n) != 0 || n < 0) return 0;
  return static_cast<size_t>(n);
}

void Subscriber::FinishConnect() {
  if (int err = ConnectError(fd_); err != 0) {
    errno_ = err;
    End(Outcome::kConnectError);
    return;
  }
  connected_ = true;
  if (ssl_ != nullptr)
    Handshake();
  else
    WriteRequest();
}

void Subscriber::Handshake() {
  bool want_write = false;
  if (TlsHandshake(ssl_, &want_write) > 0) {
    handshaken_ = true;
    WriteRequest();
    return;
  }
  if (errno == EAGAIN) {
    loop_->Modify(fd_, want_write ? EPOLLOUT : EPOLLIN, this);
    return;
  }
  TlsFailed(Outcome::kConnectError);
}

void Subscriber::TlsFailed(Outcome outcome) {
  errno_ = errno;
  tls_error_ = errno == EPROTO ? TlsLastError(ssl_) : std::strerror(errno);
  End(outcome);
}

ssize_t Subscriber::Recv(char* buf, size_t len) {
  if (ssl_ == nullptr) return recv(fd_, buf, len, 0);
  return TlsRead(ssl_, buf, len, &tls_want_write_);
}

void Subscriber::WriteRequest() {
  // A request of a few hundred bytes fits an empty socket buffer; a partial
  // write keeps EPOLLOUT armed until the rest is out.
  while (request_sent_ < request_->size()) {
    const char* p = request_->data() + request_sent_;
    size_t len = request_->size() - request_sent_;
    bool want_write = true;
    ssize_t n = ssl_ != nullptr ? TlsWrite(ssl_, p, len, &want_write)
                                : send(fd_, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      request_sent_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      loop_->Modify(fd_, want_write ? EPOLLOUT : EPOLLIN, this);
      return;
    }
    if (n < 0 && errno == EPROTO) {
      TlsFailed(Outcome::kConnectError);
      return;
    }
    errno_ = errno;
    End(Outcome::kConnectError);
    return;
  }
  state_ = State::kHead;
  loop_->Modify(fd_, EPOLLIN, this);
}

void Subscriber::OnIo(uint32_t events) {
  if (fd_ < 0) return;
  if (state_ == State::kConnecting) {
    if (!connected_)
      FinishConnect();
    else if (ssl_ != nullptr && !handshaken_)
      Handshake();
    else
      WriteRequest();
    if (state_ != State::kHead) return;
  }
  static char buf[kReadBuffer];
  for (;;) {
    ssize_t n = Recv(buf, sizeof buf);
    if (n > 0) {
      recv_ns_ = NowNs();
      bytes_read_ += static_cast<uint64_t>(n);
      Consume(std::string_view(buf, static_cast<size_t>(n)));
      if (fd_ < 0) return;
      // A short plain read emptied the socket; TLS reads one record at a
      // time and may hold more (read-ahead) where epoll cannot see it.
      if (ssl_ == nullptr && static_cast<size_t>(n) < sizeof buf) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      // TLS: a read that must write first (a key update) waits for
      // EPOLLOUT too, until a read succeeds again.
      if (ssl_ != nullptr && tls_want_write_ != tls_out_armed_) {
        tls_out_armed_ = tls_want_write_;
        loop_->Modify(fd_, tls_want_write_ ? EPOLLIN | EPOLLOUT : EPOLLIN,
                      this);
      }
      return;
    }
    if (n < 0 && errno == EPROTO) {
      TlsFailed(Outcome::kProtocolError);
      return;
    }
    errno_ = n < 0 ? errno : 0;
    End(state_ == State::kStreaming ? Outcome::kServerClosed
                                    : Outcome::kProtocolError);
    return;
  }
}

void Subscriber::Consume(std::string_view bytes) {
  if (state_ == State::kStreaming) {
    ConsumeBody(bytes);
    return;
  }
  size_t from = head_.size() < 3 ? 0 : head_.size() - 3;
  head_.append(bytes.data(), bytes.size());
  size_t end = FindHeadEnd(head_, from);
  if (end == std::string_view::npos) {
    if (head_.size() > 64 * 1024) End(Outcome::kProtocolError);
    return;
  }
  ResponseHead h;
  if (!ParseResponseHead(std::string_view(head_).substr(0, end), &h)) {
    End(Outcome::kProtocolError);
    return;
  }
  http_status_ = h.status;
  if (h.status != 200) {
    End(Outcome::kHttpError);
    return;
  }
  if (!h.chunked && !(identity_ok_ && h.content_length < 0)) {
    // evsse sheds an EventSource with 200, a retry hint and a close; a
    // stream is always chunked on HTTP/1.1.
    End(Outcome::kShed);
    return;
  }
  identity_ = !h.chunked;
  state_ = State::kStreaming;
  std::string rest = head_.substr(end);
  head_.clear();
  head_.shrink_to_fit();
  if (!rest.empty()) ConsumeBody(rest);
}

void Subscriber::ConsumeBody(std::string_view bytes) {
  if (identity_) {
    if (bytes.empty()) return;
    if (!got_first_bytes_) {
      got_first_bytes_ = true;
      observer_->OnReady(this);
      if (fd_ < 0) return;
    }
    if (!parser_.Feed(bytes).ok()) End(Outcome::kProtocolError);
    return;
  }
  bool first = true;
  chunked_.Feed(bytes, [&](std::string_view piece) {
    if (fd_ < 0 || piece.empty()) return;
    if (first && !got_first_bytes_) {
      got_first_bytes_ = true;
      observer_->OnReady(this);
    }
    first = false;
    if (!parser_.Feed(piece).ok()) End(Outcome::kProtocolError);
  });
  if (fd_ < 0) return;
  if (!chunked_.ok())
    End(Outcome::kProtocolError);
  else if (chunked_.done())
    End(Outcome::kServerClosed);
}

void Subscriber::OnEvent(const StreamParser::Event& e) {
  if (e.type == "gap") {
    gap_ = true;
    observer_->OnGap(this);
    return;
  }
  if (e.type != "message") return;
  std::string_view d = e.data;
  uint64_t seq = 0, topic = 0, sent = 0;
  if (!ParseField(&d, 's', &seq) || !ParseField(&d, 'k', &topic) ||
      !ParseField(&d, 't', &sent) || topic != topic_ || seq >= got_.size()) {
    ++misrouted_;
    return;
  }
  bool fresh = !got_[seq];
  if (fresh) {
    got_[seq] = true;
    ++unique_;
  } else {
    ++duplicates_;
  }
  // Order is the server's: with several publish connections the
  // generator's own sequence has no defined order across them.
  uint64_t major = 0, minor = 0;
  if (ParsePosition(e.last_event_id, &major, &minor)) {
    if (major < last_major_ || (major == last_major_ && minor <= last_minor_))
      ++reordered_;
    else
      last_major_ = major, last_minor_ = minor;
  }
  observer_->OnDelivery(this, seq, static_cast<int64_t>(sent), recv_ns_, fresh);
}

void Subscriber::End(Outcome outcome) {
  Drop();
  state_ = State::kEnded;
  outcome_ = outcome;
  observer_->OnEnded(this);
}

}  // namespace evsse::bench
