// Hub::Create: every invalid option and every resource it cannot get is a
// clear error, never a Hub that half works.
#include <event2/event.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>

#include "evsse/hub.h"

namespace evsse {
namespace {

using ::testing::HasSubstr;

class HubCreateTest : public ::testing::Test {
 protected:
  HubCreateTest() : base_(event_base_new()) {}
  ~HubCreateTest() override { event_base_free(base_); }
  std::string Error(const HubOptions& o) {
    auto hub = Hub::Create(base_, o);
    return hub.ok() ? "" : hub.status().ToString();
  }
  event_base* base_;
};

TEST_F(HubCreateTest, RefusesInvalidOptionsByName) {
  EXPECT_FALSE(Hub::Create(nullptr, {}).ok());
  HubOptions o;
  o.max_connections = 0;
  EXPECT_THAT(Error(o), HasSubstr("max_connections"));
  o = {};
  o.max_topics = 0;
  EXPECT_THAT(Error(o), HasSubstr("max_topics"));
  o = {};
  o.max_topic_length = 2000;
  EXPECT_THAT(Error(o), HasSubstr("max_topic_length"));
  o = {};
  o.max_event_bytes = 0;
  EXPECT_THAT(Error(o), HasSubstr("max_event_bytes"));
  o = {};
  o.history_max_bytes = o.max_event_bytes - 1;
  EXPECT_THAT(Error(o), HasSubstr("history_max_bytes"));
  EXPECT_EQ(Error({}), "");
}

// A process out of descriptors cannot make the Hub's wake-up eventfd: the
// Hub is refused (before, it was made and published into fd -1).
TEST_F(HubCreateTest, FailsWhenItsWakeUpDescriptorCannotBeMade) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers' runtime opens files of its own (UBSan's type checks read
  // /proc/self/maps): with no descriptor left, it reports itself.
  GTEST_SKIP() << "needs a process with no descriptor left: not under a "
                  "sanitizer";
#endif
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int probe = open("/dev/null", O_RDONLY);  // the lowest free descriptor
  ASSERT_GE(probe, 0);
  close(probe);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(probe);  // no descriptor left
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  auto hub = Hub::Create(base_, {});
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_FALSE(hub.ok());
  EXPECT_EQ(hub.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(hub.status().message(), HasSubstr("eventfd"));
  EXPECT_TRUE(Hub::Create(base_, {}).ok());  // fine again with descriptors
}

}  // namespace
}  // namespace evsse
