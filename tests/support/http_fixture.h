// Test support: a real evhttp server on 127.0.0.1 port 0 with a Hub, and raw
// socket clients, all driven by one event_base on the test thread, so tests
// are deterministic and need no locks. Clients speak HTTP/1.x by hand (so
// tests control every byte) and parse the event stream with StreamParser.
#ifndef EVSSE_TESTS_HTTP_FIXTURE_H_
#define EVSSE_TESTS_HTTP_FIXTURE_H_

#include <event2/event.h>
#include <event2/http.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "evsse/evhttp.h"
#include "evsse/hub.h"
#include "evsse/stream_parser.h"
#include "http_response.h"

struct evhtp;

namespace evsse::testing {

// TestClient: one TCP connection to the server. Every live client is polled
// by HttpFixture::RunUntil.
class TestClient {
 public:
  TestClient(int port, const std::string& request);  // sends it at once
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  // Poll reads whatever arrived (non-blocking); called by RunUntil.
  void Poll();
  void Send(const std::string& bytes);
  // Close sends FIN; Reset sends RST (SO_LINGER 0).
  void Close();
  void Reset();
  // StopReading makes Poll ignore the socket, so the server's writes back
  // up (a slow consumer); a small receive buffer makes it quick.
  void StopReading() { reading_ = false; }
  void ResumeReading() { reading_ = true; }

  bool has_head() const { return response_.head_done(); }
  int status() const { return response_.status(); }
  // header returns the first value of a response header ("" if absent);
  // names are matched case-insensitively.
  std::string header(const std::string& name) const {
    return response_.header(name);
  }
  bool has_header(const std::string& name) const {
    return response_.has_header(name);
  }
  const std::string& body() const { return body_; }  // de-chunked
  bool closed() const { return closed_; }            // EOF or reset seen
  // chunked_end: saw the last chunk.
  bool chunked_end() const { return response_.chunked_end(); }

  std::vector<StreamParser::Event> events;
  int comments = 0;
  std::vector<std::string> comment_texts;
  std::optional<uint64_t> retry;
  std::string last_event_id() const { return parser_.last_event_id(); }
  // ids returns the last_event_id of every event, in order.
  std::vector<std::string> ids() const;
  std::vector<std::string> datas() const;
  std::chrono::steady_clock::time_point last_byte_at;

 private:
  void FeedBody(std::string_view bytes);

  int fd_ = -1;
  bool reading_ = true;
  bool closed_ = false;
  ResponseReader response_;
  std::string body_;
  StreamParser parser_;
};

// RawConn: a loopback socket whose bytes are kept verbatim, for tests that
// look at the exact response, dribble or pipeline requests, or read several
// responses on one connection. Non-blocking; `nodelay` sends each Send as
// its own segment.
class RawConn {
 public:
  explicit RawConn(int port, bool nodelay = false);
  ~RawConn();
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  int fd() const { return fd_; }
  void Send(const std::string& s);
  // SendSome sends what the socket takes now (non-blocking).
  size_t SendSome(const char* data, size_t n);
  // Poll reads what arrived; true once the peer closed.
  bool Poll();
  bool Has(const std::string& s) const { return Count(s) > 0; }
  size_t Count(const std::string& s) const;

  std::string in;
  bool eof = false;

 private:
  int fd_;
};

// Adapter: which HTTP library serves the endpoints.
enum class Adapter { kEvhttp, kEvhtp };
std::string AdapterName(const ::testing::TestParamInfo<Adapter>& info);

// HttpFixture: base + an HTTP server (evhttp unless adapter_ says evhtp) +
// Hub, with helpers to run the loop.
class HttpFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // MountStream / MountPublishAt mount more endpoints on the server, with
  // the adapter under test; the fixture keeps their handles (mounts_) and
  // unmounts them before the server goes.
  Status MountStream(const char* path, const StreamOptions& options);
  Status MountPublishAt(const char* path, const PublishOptions& options);
  // FreeServer frees the HTTP server now (before the Hub, or after it for
  // tests of that order); TearDown then skips it.
  void FreeServer();

  // StartServer creates the Hub with `hub_options` and mounts a stream
  // endpoint at /events and a publish endpoint at /publish.
  void StartServer(HubOptions hub_options = {},
                   StreamOptions stream_options = {},
                   PublishOptions publish_options = {});

  // Connect opens a client and sends GET `target` (e.g. "/events?topic=a")
  // with `extra_headers` (each "Name: value\r\n").
  std::unique_ptr<TestClient> Get(const std::string& target,
                                  const std::string& extra_headers = "",
                                  const std::string& version = "HTTP/1.1");
  std::unique_ptr<TestClient> Raw(const std::string& request);

  // RunUntil runs the loop (and polls clients) until pred() is true or the
  // timeout passes; returns pred().
  bool RunUntil(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // RunFor runs the loop for a while.
  void RunFor(std::chrono::milliseconds d);

  // Publish through the Hub and wait for the assigned id.
  std::string Publish(const std::string& topic, const std::string& data,
                      const std::string& type = "");

  Adapter adapter_ = Adapter::kEvhttp;
  event_base* base_ = nullptr;
  struct ::evhttp* http_ = nullptr;  // evhttp only
  struct ::evhtp* htp_ = nullptr;    // evhtp only
  int evhtp_connections_ = 0;        // connections libevhtp still holds
  std::unique_ptr<Hub> hub_;
  std::vector<Mounted> mounts_;  // MountStream/MountPublishAt handles
  int port_ = 0;
  std::vector<std::string> logs_;
};

// OnEveryAdapter<F>: a fixture whose TEST_P tests run once per adapter:
//   class StreamTest : public OnEveryAdapter<HttpFixture> {};
//   INSTANTIATE_TEST_SUITE_P(Adapters, StreamTest, EveryAdapter(),
//                            AdapterName);
template <class Base>
class OnEveryAdapter : public Base,
                       public ::testing::WithParamInterface<Adapter> {
 protected:
  void SetUp() override {
    this->adapter_ = this->GetParam();
    Base::SetUp();
  }
};

inline auto EveryAdapter() {
  return ::testing::Values(Adapter::kEvhttp, Adapter::kEvhtp);
}

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_HTTP_FIXTURE_H_
