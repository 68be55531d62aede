// commit_watch.h: commit events of a local store (Client::wait_commits).
//
// A branch's head lives in its state file, meta/branches/<name>.json, which
// every head move replaces by a rename. So "a branch gained commits" is "a
// file in meta/branches was renamed into place", which inotify reports the
// moment it happens: one watcher thread per open store turns those kernel
// events into a generation counter that waiters sleep on. What is new is
// then computed from the heads alone (cursor = every watched branch's head),
// so nothing is stored for events, a crash cannot lose one, and a cursor
// stays valid across restarts.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <pfs/client.h>

#include "fsutil.h"

namespace pfs::detail {

// Counts changes in one directory (inotify, on a thread of its own).
class DirWatcher {
 public:
  // Starts watching `dir` (throws a Fail when inotify cannot be set up).
  explicit DirWatcher(const std::filesystem::path& dir);
  ~DirWatcher();
  DirWatcher(const DirWatcher&) = delete;
  DirWatcher& operator=(const DirWatcher&) = delete;

  // The number of changes seen so far.
  std::uint64_t generation();
  // Sleeps until generation() differs from `seen` or `deadline` passes;
  // returns generation().
  std::uint64_t wait(std::uint64_t seen, std::chrono::steady_clock::time_point deadline);

 private:
  void run();

  UniqueFd inotify_;
  UniqueFd stop_;  // an eventfd that ends run()
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t generation_ = 0;
  std::thread thread_;
};

// Branch name -> head ("" for a branch without commits).
using Heads = std::map<std::string, std::string>;

// The cursor's text form ("branch:head,...") and back (kInvalidArgument).
std::string format_cursor(const Heads& heads);
Heads parse_cursor(std::string_view cursor);

// Client::wait_commits for a local store `c` whose meta/branches `watcher`
// watches. Throws a Fail.
CommitEvents wait_for_commits(Client& c, DirWatcher& watcher, const WaitOptions& opts);

}  // namespace pfs::detail
