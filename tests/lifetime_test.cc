// One lifetime rule (module/README.md, "Lifetime"): whatever a user creates
// (the HTTP server, the Hub and its mounts, a Redis link) may be destroyed
// in reverse order of creation, and in the other orders listed here, on
// both adapters, with a stream open, Redis attached and a publish still on
// its way to Redis. Built with ASan and UBSan, a use after free or a leak
// fails the test; without them it checks what is observable: the client's
// stream ends and the publish callback fires exactly once.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "evsse/evhtp.h"
#include "evsse/evhttp.h"
#include "evsse/hub.h"
#include "evsse/mounted.h"
#include "evsse/redis.h"
#include "http_fixture.h"
#include "redis_fixture.h"

namespace evsse::testing {
namespace {

using std::chrono::milliseconds;

// What goes, in order. kServer is evhttp_free / evhtp_free.
enum class Step { kLink, kHub, kServer };

class LifetimeTest : public OnEveryAdapter<HttpFixture> {
 protected:
  void SetUp() override {
    OnEveryAdapter<HttpFixture>::SetUp();
    ASSERT_TRUE(redis_.Start());
  }
  void TearDown() override {
    link_.reset();
    OnEveryAdapter<HttpFixture>::TearDown();
  }

  // Live: a Hub on Redis with one stream that received an event through
  // Redis, and one more publish sent and not yet answered.
  void Live() {
    StartServer();
    redis::RedisOptions ro;
    ro.address = redis_.address();
    auto link = redis::Attach(hub_.get(), ro);
    ASSERT_TRUE(link.ok()) << link.status().ToString();
    link_ = std::move(link).value();
    ASSERT_TRUE(RunUntil([&] { return hub_->stats().backend.up; }));
    client_ = Get("/events?topic=t");
    ASSERT_TRUE(RunUntil([&] { return client_->has_head(); }));
    ASSERT_EQ(client_->status(), 200);
    // A fresh subscriber starts at the topic's tail once the node follows
    // the topic: probe until one arrives (redis_nodes_test does the same).
    ASSERT_TRUE(RunUntil([&] {
      if (client_->events.empty())
        hub_->Publish("t", {"probe", "one"}, {}).IgnoreError();
      return !client_->events.empty();
    }));
    ASSERT_TRUE(hub_->Publish("t", {"", "two"},
                              [this](Result<std::string>) { ++answered_; })
                    .ok());
  }

  // Destroy tears down in `order`, running the loop between the steps (so
  // that whatever a step left scheduled fires against what remains).
  void Destroy(std::initializer_list<Step> order) {
    for (Step step : order) {
      switch (step) {
        case Step::kLink:
          link_.reset();
          break;
        case Step::kHub:
          hub_.reset();
          break;
        case Step::kServer:
          FreeServer();
          break;
      }
      RunFor(milliseconds(30));
    }
    EXPECT_TRUE(RunUntil([&] { return client_->closed(); }));
    EXPECT_EQ(answered_, 1);  // exactly once, whoever answered it
  }

  RedisServer redis_;
  std::unique_ptr<redis::Link> link_;
  std::unique_ptr<TestClient> client_;
  int answered_ = 0;
};

// Reverse order of creation (server, Hub + mounts, link): the rule.
TEST_P(LifetimeTest, ReverseOrderOfCreation) {
  Live();
  Destroy({Step::kLink, Step::kHub, Step::kServer});
}

// The Hub before its link: the Hub detaches its store when it goes.
TEST_P(LifetimeTest, HubBeforeItsLink) {
  Live();
  Destroy({Step::kHub, Step::kLink, Step::kServer});
}

// The Hub first while the server keeps running and accepting: a request to
// the mounted path finds no Hub.
TEST_P(LifetimeTest, HubBeforeLinkAndServerWithTheLoopRunning) {
  Live();
  Destroy({Step::kHub});
  auto late = Get("/events?topic=t");
  EXPECT_TRUE(RunUntil([&] { return late->has_head(); }));
  EXPECT_EQ(late->status(), 503);  // the route outlives the Hub, unused
  late.reset();  // (libevhtp's evhtp_free leaves open connections running)
  Destroy({Step::kLink, Step::kServer});
}

// evhttp only: the server first (it closes the streams; the Hub hears of
// each). libevhtp 1.2.18's evhtp_free leaves open connections running
// against the freed server, so with evhtp the streams end first (Hub).
TEST_P(LifetimeTest, ServerFirst) {
  if (adapter_ == Adapter::kEvhtp) GTEST_SKIP() << "libevhtp: see evhtp.h";
  Live();
  Destroy({Step::kServer, Step::kLink, Step::kHub});
}

TEST_P(LifetimeTest, ServerThenHubThenLink) {
  if (adapter_ == Adapter::kEvhtp) GTEST_SKIP() << "libevhtp: see evhtp.h";
  Live();
  Destroy({Step::kServer, Step::kHub, Step::kLink});
}

// Mount handles (evsse/mounted.h).
class MountedTest : public LifetimeTest {
 protected:
  Mounted MountAt(const char* path) {
    return adapter_ == Adapter::kEvhttp ? evhttp::Mount(http_, path, hub_.get())
                                        : evhtp::Mount(htp_, path, hub_.get());
  }
  int StatusOf(const std::string& target) {
    auto c = Get(target);
    EXPECT_TRUE(RunUntil([&] { return c->has_head(); }));
    return c->status();
  }
};

// A handle takes its path off the server; streams it opened are the Hub's
// and go on; the handle's own paths only.
TEST_P(MountedTest, DestroyingTheHandleUnmounts) {
  StartServer();
  std::optional<Mounted> handle(MountAt("/h"));
  ASSERT_TRUE(handle->ok());
  EXPECT_TRUE(handle->mounted());
  auto open = Get("/h?topic=t");
  ASSERT_TRUE(RunUntil([&] { return open->has_head(); }));
  EXPECT_EQ(open->status(), 200);
  handle.reset();
  EXPECT_EQ(StatusOf("/h?topic=t"), 404);
  EXPECT_EQ(StatusOf("/events?topic=t"), 200);  // another handle's path
  ASSERT_FALSE(Publish("t", "still").empty());
  EXPECT_TRUE(RunUntil([&] { return open->events.size() == 1; }));
  open.reset();
  if (adapter_ == Adapter::kEvhttp) {  // libevhtp keeps the path taken
    Mounted again = MountAt("/h");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(StatusOf("/h?topic=t"), 200);
  }
}

TEST_P(MountedTest, MovedAndUnmountedOnce) {
  StartServer();
  Mounted a = MountAt("/h");
  ASSERT_TRUE(a.ok());
  Mounted b = std::move(a);
  EXPECT_FALSE(a.mounted());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(b.mounted());
  b.Unmount();
  b.Unmount();
  EXPECT_FALSE(b.mounted());
  EXPECT_EQ(StatusOf("/h?topic=t"), 404);
}

// Reverse order of creation with handles: handle, link, Hub, server.
TEST_P(MountedTest, ReverseOrderWithAHandle) {
  Live();
  Mounted handle = MountAt("/h");
  ASSERT_TRUE(handle.ok());
  auto second = Get("/h?topic=t");
  ASSERT_TRUE(RunUntil([&] { return second->has_head(); }));
  handle.Unmount();
  Destroy({Step::kLink, Step::kHub, Step::kServer});
  EXPECT_TRUE(RunUntil([&] { return second->closed(); }));
}

// A handle that outlives its Hub (but not its server): the path answers
// 503 until the handle goes, then 404.
TEST_P(MountedTest, HandleAfterTheHub) {
  Live();
  Mounted handle = MountAt("/h");
  ASSERT_TRUE(handle.ok());
  Destroy({Step::kHub, Step::kLink});
  EXPECT_EQ(StatusOf("/h?topic=t"), 503);
  handle.Unmount();
  EXPECT_EQ(StatusOf("/h?topic=t"), 404);
  Destroy({Step::kServer});
}

// A failed mount holds its status and nothing to unmount; Release gives a
// mount up to the server, which keeps it for its life.
TEST_P(MountedTest, FailedMountAndRelease) {
  StartServer();
  Mounted bad = MountAt("no-slash");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(bad.mounted());
  Mounted taken = MountAt("/events");  // StartServer's path
  EXPECT_EQ(taken.status().code(), StatusCode::kFailedPrecondition);
  {
    Mounted kept = MountAt("/kept");
    ASSERT_TRUE(kept.mounted());
    Status s = kept.Release();
    EXPECT_TRUE(s.ok());
    EXPECT_FALSE(kept.mounted());
    EXPECT_TRUE(kept.ok());
  }
  EXPECT_EQ(StatusOf("/kept?topic=t"), 200);  // the server still has it
}

// ok() and status() are refused on a temporary, which would unmount at the
// end of its statement: `Mount(...).ok()` does not compile.
template <class T, class = void>
struct HasOk : std::false_type {};
template <class T>
struct HasOk<T, std::void_t<decltype(std::declval<T>().ok())>>
    : std::true_type {};
static_assert(HasOk<Mounted&>::value && HasOk<const Mounted&>::value);
static_assert(!HasOk<Mounted>::value && !HasOk<Mounted&&>::value);

INSTANTIATE_TEST_SUITE_P(Adapters, LifetimeTest, EveryAdapter(), AdapterName);
INSTANTIATE_TEST_SUITE_P(Adapters, MountedTest, EveryAdapter(), AdapterName);

}  // namespace
}  // namespace evsse::testing
