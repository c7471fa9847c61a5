#include "failover_fixture.h"

#include <sys/wait.h>

#include <cstdlib>

#include "redis_fixture.h"
#include "run_loop.h"

namespace evsse::testing {

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && std::atoi(v) > 0 ? std::atoi(v) : fallback;
}

std::string FailoverFixture::SkipReason(const char* hello_bin,
                                        const char* soak_env) {
  if (hello_bin == nullptr)
    return "evhttp_hello is not built in this configuration";
  if (TestName() == "Soak" && EnvInt(soak_env, 0) == 0)
    return std::string("set ") + soak_env + " to run the soak";
  return "";
}

std::string FailoverFixture::TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

void FailoverFixture::SetUpLoop() {
  base_ = event_base_new();
  ASSERT_NE(base_, nullptr);
  tick_ = event_new(
      base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
  timeval tv{0, 10 * 1000};
  event_add(tick_, &tv);
}

void FailoverFixture::TearDown() {
  if (publisher_) publisher_->Stop();
  clients_.reset();
  if (base_ != nullptr) {
    for (int i = 0; i < 5; ++i) event_base_loop(base_, EVLOOP_NONBLOCK);
  }
  for (auto& n : nodes_) {
    int status = n->Stop();
    if (status != -1) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "node on port " << n->port() << " ended with " << status << ":\n"
          << n->Log();
    }
  }
  if (tick_ != nullptr) event_free(tick_);
  if (base_ != nullptr) event_base_free(base_);
}

::testing::AssertionResult FailoverFixture::StartNode(
    const std::string& binary, const std::string& log_path,
    const std::vector<std::string>& redis_args) {
  int port = FreeTcpPort();
  ports_.push_back(port);
  nodes_.push_back(std::make_unique<NodeProcess>(binary, log_path));
  return nodes_.back()->StartWith(port, redis_args);
}

void FailoverFixture::StartClients() {
  clients_ = std::make_unique<SequenceClients>(base_, ports_, topics_);
  std::string error;
  ASSERT_TRUE(clients_->Start(&error)) << error;
}

bool FailoverFixture::RunUntil(const std::function<bool()>& pred,
                               std::chrono::milliseconds timeout) {
  return RunLoopUntil(base_, pred, timeout);
}

void FailoverFixture::RunFor(std::chrono::milliseconds d) {
  RunLoopFor(base_, d);
}

void FailoverFixture::StartPublisher() {
  PublisherOptions o;
  o.ports = ports_;
  o.topics = topics_;
  o.rate = publisher_rate_;
  publisher_ = std::make_unique<SequencePublisher>(o);
  publisher_->Start();
}

bool FailoverFixture::WaitAccepted(size_t n,
                                   std::chrono::milliseconds timeout) {
  size_t target = publisher_->Counts().accepted + n;
  return RunUntil([&] { return publisher_->Counts().accepted >= target; },
                  timeout);
}

SequenceCheck FailoverFixture::StopAndCollect(std::vector<Outcome>* outcomes) {
  publisher_->Stop();
  *outcomes = publisher_->Outcomes();
  bool caught_up =
      clients_->WaitAll(*outcomes, std::chrono::milliseconds(30000));
  // Anything duplicated would show up now.
  RunFor(std::chrono::milliseconds(300));
  EXPECT_TRUE(caught_up) << "a client did not get every accepted event";
  return CheckSequences(*outcomes, clients_->Views());
}

}  // namespace evsse::testing
