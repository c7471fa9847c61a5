#include "http_fixture.h"

#include "run_loop.h"

#include <arpa/inet.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include "evsse/evhtp.h"

// Last: onigposix.h (pulled in by evhtp.h) renames the POSIX regex names.
#include <evhtp/evhtp.h>

namespace evsse::testing {

RawConn::RawConn(int port, bool nodelay) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  int one = 1;
  if (nodelay) setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

RawConn::~RawConn() { close(fd_); }

void RawConn::Send(const std::string& s) {
  EXPECT_EQ(send(fd_, s.data(), s.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(s.size()));
}

size_t RawConn::SendSome(const char* data, size_t n) {
  ssize_t r = send(fd_, data, n, MSG_NOSIGNAL);
  return r > 0 ? static_cast<size_t>(r) : 0;
}

bool RawConn::Poll() {
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) eof = true;
    return eof;
  }
}

size_t RawConn::Count(const std::string& s) const {
  size_t n = 0;
  for (size_t p = in.find(s); p != std::string::npos; p = in.find(s, p + 1))
    ++n;
  return n;
}

namespace {

std::vector<TestClient*>& LiveClients() {
  static std::vector<TestClient*> clients;
  return clients;
}

}  // namespace

TestClient::TestClient(int port, const std::string& request) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;  // a slow consumer backs up quickly
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    ADD_FAILURE() << "connect: " << strerror(errno);
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Send(request);
  parser_.on_event = [this](const StreamParser::Event& e) {
    events.push_back(e);
  };
  parser_.on_comment = [this](std::string_view c) {
    ++comments;
    comment_texts.emplace_back(c);
  };
  parser_.on_retry = [this](uint64_t ms) { retry = ms; };
  LiveClients().push_back(this);
}

TestClient::~TestClient() {
  auto& v = LiveClients();
  v.erase(std::remove(v.begin(), v.end(), this), v.end());
  if (fd_ >= 0) close(fd_);
}

void TestClient::Send(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      return;
    }
  }
}

void TestClient::Close() { shutdown(fd_, SHUT_WR); }

void TestClient::Reset() {
  linger l{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd_);
  fd_ = -1;
  closed_ = true;
}

void TestClient::Poll() {
  if (!reading_ || closed_ || fd_ < 0) return;
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      response_.Append(buf, static_cast<size_t>(n));
      last_byte_at = std::chrono::steady_clock::now();
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) closed_ = true;
    break;
  }
  response_.Consume([this](std::string_view b) { FeedBody(b); });
}

void TestClient::FeedBody(std::string_view bytes) {
  if (bytes.empty()) return;
  body_.append(bytes);
  EXPECT_TRUE(parser_.Feed(bytes).ok());
}

std::vector<std::string> TestClient::ids() const {
  std::vector<std::string> out;
  for (auto& e : events) out.push_back(e.last_event_id);
  return out;
}

std::vector<std::string> TestClient::datas() const {
  std::vector<std::string> out;
  for (auto& e : events) out.push_back(e.data);
  return out;
}

std::string AdapterName(const ::testing::TestParamInfo<Adapter>& info) {
  return info.param == Adapter::kEvhttp ? "evhttp" : "evhtp";
}

namespace {

evhtp_res OnEvhtpConnFini(evhtp_connection_t*, void* arg) {
  --*static_cast<int*>(arg);
  return EVHTP_RES_OK;
}

evhtp_res OnEvhtpAccept(evhtp_connection_t* conn, void* arg) {
  ++*static_cast<int*>(arg);
  evhtp_connection_set_hook(conn, evhtp_hook_on_connection_fini,
                            reinterpret_cast<evhtp_hook>(&OnEvhtpConnFini),
                            arg);
  return EVHTP_RES_OK;
}

}  // namespace

void HttpFixture::SetUp() {
  std::signal(SIGPIPE, SIG_IGN);
  base_ = event_base_new();
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (adapter_ == Adapter::kEvhttp) {
    http_ = evhttp_new(base_);
    evhttp_bound_socket* bound =
        evhttp_bind_socket_with_handle(http_, "127.0.0.1", 0);
    ASSERT_NE(bound, nullptr);
    getsockname(evhttp_bound_socket_get_fd(bound),
                reinterpret_cast<sockaddr*>(&a), &len);
  } else {
    htp_ = evhtp_new(base_, nullptr);
    evhtp_set_post_accept_cb(htp_, &OnEvhtpAccept, &evhtp_connections_);
    ASSERT_EQ(evhtp_bind_socket(htp_, "ipv4:127.0.0.1", 0, 128), 0);
    getsockname(evconnlistener_get_fd(htp_->server),
                reinterpret_cast<sockaddr*>(&a), &len);
  }
  port_ = ntohs(a.sin_port);
}

void HttpFixture::FreeServer() {
  mounts_.clear();  // the handles must not outlive the server
  if (http_) evhttp_free(http_);
  http_ = nullptr;
  if (htp_) {
    // libevhtp 1.2.18's evhtp_free leaves connections open and serving:
    // the clients are gone by now, so wait for evhtp to let go of them.
    evhtp_unbind_socket(htp_);
    EXPECT_TRUE(RunUntil([&] { return evhtp_connections_ == 0; }));
    evhtp_free(htp_);
    htp_ = nullptr;
  }
}

void HttpFixture::TearDown() {
  mounts_.clear();         // reverse order of creation: the mounts first
  if (htp_) hub_.reset();  // ends the streams evhtp_free would leave open
  FreeServer();
  hub_.reset();
  // Let deferred closes run before the base goes.
  event_base_loop(base_, EVLOOP_NONBLOCK);
  event_base_free(base_);
}

Status HttpFixture::MountStream(const char* path,
                                const StreamOptions& options) {
  mounts_.push_back(adapter_ == Adapter::kEvhttp
                        ? evhttp::Mount(http_, path, hub_.get(), options)
                        : evhtp::Mount(htp_, path, hub_.get(), options));
  return mounts_.back().status();
}

Status HttpFixture::MountPublishAt(const char* path,
                                   const PublishOptions& options) {
  mounts_.push_back(adapter_ == Adapter::kEvhttp
                        ? evhttp::MountPublish(http_, path, hub_.get(), options)
                        : evhtp::MountPublish(htp_, path, hub_.get(), options));
  return mounts_.back().status();
}

void HttpFixture::StartServer(HubOptions hub_options,
                              StreamOptions stream_options,
                              PublishOptions publish_options) {
  hub_options.log = [this](LogLevel, std::string_view m) {
    logs_.emplace_back(m);
  };
  hub_options.log_level = LogLevel::kDebug;
  auto hub = Hub::Create(base_, std::move(hub_options));
  ASSERT_TRUE(hub.ok()) << hub.status().ToString();
  hub_ = std::move(hub.value());
  ASSERT_TRUE(MountStream("/events", stream_options).ok());
  if (publish_options.bearer_token.empty() && !publish_options.auth)
    publish_options.allow_unauthenticated = true;
  ASSERT_TRUE(MountPublishAt("/publish", publish_options).ok());
}

std::unique_ptr<TestClient> HttpFixture::Get(const std::string& target,
                                             const std::string& extra_headers,
                                             const std::string& version) {
  return Raw("GET " + target + " " + version +
             "\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" +
             extra_headers + "\r\n");
}

std::unique_ptr<TestClient> HttpFixture::Raw(const std::string& request) {
  return std::make_unique<TestClient>(port_, request);
}

bool HttpFixture::RunUntil(const std::function<bool()>& pred,
                           std::chrono::milliseconds timeout) {
  return RunLoopUntil(base_, pred, timeout, [this] {
    for (TestClient* c : LiveClients()) c->Poll();
  });
}

void HttpFixture::RunFor(std::chrono::milliseconds d) {
  RunUntil([] { return false; }, d);
}

std::string HttpFixture::Publish(const std::string& topic,
                                 const std::string& data,
                                 const std::string& type) {
  std::optional<Result<std::string>> got;
  Status s = hub_->Publish(topic, {type, data},
                           [&got](Result<std::string> id) { got = id; });
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return "";
  EXPECT_TRUE(RunUntil([&] { return got.has_value(); }));
  if (!got || !got->ok()) return "";
  return got->value();
}

}  // namespace evsse::testing
