// Spawn: how the tests start the processes they own (redis-server,
// redis-cli, evsse nodes, evsse-alerts): stdin from /dev/null, stdout and
// stderr appended to a log file, stopped later by the returned pid.
#ifndef EVSSE_TESTS_SUPPORT_SPAWN_PROCESS_H_
#define EVSSE_TESTS_SUPPORT_SPAWN_PROCESS_H_

#include <fcntl.h>
#include <spawn.h>
#include <sys/types.h>

#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace evsse::testing {

// Spawn runs args[0] (looked up on PATH when it has no '/') with `args`;
// `env` replaces the environment when given. Returns the pid, or -1 with
// the reason in `error`.
inline pid_t Spawn(std::vector<std::string> args, const std::string& log,
                   std::string* error,
                   std::vector<std::string>* env = nullptr) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (env != nullptr) {
    for (std::string& e : *env) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(),
                        env != nullptr ? envp.data() : environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    *error = "spawn " + args[0] + ": " + strerror(rc);
    return -1;
  }
  return pid;
}

}  // namespace evsse::testing

#endif  // EVSSE_TESTS_SUPPORT_SPAWN_PROCESS_H_
