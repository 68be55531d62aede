// commit_watch.cc: commit events of a local store (commit_watch.h).
#include "commit_watch.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include <fmt/format.h>

#include "fail.h"
#include "local_store.h"
#include "names.h"

namespace pfs::detail {

DirWatcher::DirWatcher(const std::filesystem::path& dir) {
  inotify_ = UniqueFd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_)
    fail_errno(errno, "watch " + dir.string() +
                          " for new commits (inotify; raise fs.inotify.max_user_instances if exhausted)");
  // A head moves by a rename into the directory; a branch is deleted by an
  // unlink; IN_CLOSE_WRITE covers a file written in place.
  if (::inotify_add_watch(inotify_.get(), dir.c_str(),
                          IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_CLOSE_WRITE) < 0)
    fail_errno(errno, "watch " + dir.string() + " for new commits (inotify)");
  stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_) fail_errno(errno, "watch " + dir.string() + " for new commits (eventfd)");
  thread_ = std::thread([this] { run(); });
}

DirWatcher::~DirWatcher() {
  std::uint64_t one = 1;
  // NOTE: a failed write would leave the thread running; an eventfd write of
  // 1 cannot fail short of a counter at its maximum, which we never reach.
  [[maybe_unused]] ssize_t n = ::write(stop_.get(), &one, sizeof one);
  thread_.join();
}

void DirWatcher::run() {
  std::array<pollfd, 2> fds{pollfd{inotify_.get(), POLLIN, 0}, pollfd{stop_.get(), POLLIN, 0}};
  alignas(inotify_event) std::array<char, 8192> buf{};
  for (;;) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;  // cannot happen with valid descriptors; waiters then time out
    }
    if (fds[1].revents != 0) return;
    bool changed = false;
    for (;;) {
      ssize_t n = ::read(inotify_.get(), buf.data(), buf.size());
      if (n > 0) {
        changed = true;
        continue;
      }
      break;  // EAGAIN: drained
    }
    if (changed) {
      std::lock_guard lock(mu_);
      ++generation_;
      cv_.notify_all();
    }
  }
}

std::uint64_t DirWatcher::generation() {
  std::lock_guard lock(mu_);
  return generation_;
}

std::uint64_t DirWatcher::wait(std::uint64_t seen, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return generation_ != seen; });
  return generation_;
}

std::string format_cursor(const Heads& heads) {
  std::string out;
  for (const auto& [branch, head] : heads) {
    if (!out.empty()) out += ',';
    out += branch + ':' + head;
  }
  return out;
}

Heads parse_cursor(std::string_view cursor) {
  Heads heads;
  auto bad = [&](std::string_view why) {
    failf(ErrorCode::kInvalidArgument,
          "invalid cursor \"{}\": {} (pass the cursor an earlier wait returned, or none to start "
          "from now)",
          cursor, why);
  };
  while (!cursor.empty()) {
    std::size_t comma = cursor.find(',');
    std::string_view item = cursor.substr(0, comma);
    cursor = comma == std::string_view::npos ? std::string_view{} : cursor.substr(comma + 1);
    std::size_t colon = item.find(':');
    if (colon == std::string_view::npos) bad("an entry is not branch:head");
    std::string branch(item.substr(0, colon)), head(item.substr(colon + 1));
    try {
      check_branch_name(branch);
    } catch (const Fail&) {
      bad("it names an invalid branch");
    }
    if (!head.empty() && !is_commit_id(head)) bad("a head is not a commit id");
    heads[branch] = head;
    if (comma != std::string_view::npos && cursor.empty()) bad("it ends with a comma");
  }
  return heads;
}

namespace {

Heads current_heads(Client& c, const std::string& branch) {
  Heads heads;
  if (!branch.empty()) {
    auto b = c.inspect_branch(branch);
    if (b) heads[branch] = b->head;
    else if (b.error().code != ErrorCode::kNotFound) throw Fail(b.error());
    return heads;
  }
  for (auto& b : unwrap(c.list_branches())) heads[b.name] = b.head;
  return heads;
}

// What `branch` gained going from head `from` to head `to` (not equal):
// the first-parent chain from `to` back to `from`, oldest first.
void gained(Client& c, const std::string& branch, const std::string& from, const std::string& to,
            std::vector<CommitEvent>& out) {
  if (to.empty()) return;  // reset to no commits: nothing gained
  std::vector<CommitInfo> chain;
  std::string id = to;
  bool found = false;
  while (!id.empty()) {
    if (id == from) {
      found = true;
      break;
    }
    auto ci = c.inspect_commit(id);
    if (!ci) {
      if (ci.error().code == ErrorCode::kNotFound) break;  // deleted history: stop here
      throw Fail(ci.error());
    }
    id = ci->parent;
    chain.push_back(std::move(*ci));
  }
  // A new branch, or a head moved off its old history: the new head alone.
  if (!found && !(from.empty() && id.empty())) chain.resize(std::min<std::size_t>(chain.size(), 1));
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) out.push_back({branch, std::move(*it)});
}

std::vector<CommitEvent> changes(Client& c, const Heads& before, const Heads& now) {
  std::vector<CommitEvent> out;
  for (const auto& [branch, head] : now) {
    auto old = before.find(branch);
    if (old == before.end()) {
      // A branch made since: its head is new to this watcher; its history is not.
      if (!head.empty()) out.push_back({branch, unwrap(c.inspect_commit(head))});
    } else if (old->second != head) {
      gained(c, branch, old->second, head, out);
    }
  }
  return out;
}

}  // namespace

CommitEvents wait_for_commits(Client& c, DirWatcher& watcher, const WaitOptions& opts) {
  if (!opts.branch.empty()) check_branch_name(opts.branch);
  if (opts.timeout_ms < 0)
    failf(ErrorCode::kInvalidArgument, "timeout {} ms is negative (0 does not wait)", opts.timeout_ms);
  // Capped at a year, so that a "for ever" cannot overflow the clock.
  constexpr std::int64_t kYearMs = 365LL * 24 * 3600 * 1000;
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(std::min(opts.timeout_ms, kYearMs));
  // The generation is read before the heads, so a head that moves after the
  // heads were read always wakes the wait below.
  std::uint64_t gen = watcher.generation();
  Heads before;
  if (opts.since.empty()) {
    before = current_heads(c, opts.branch);
  } else {
    before = parse_cursor(opts.since);
    if (!opts.branch.empty()) std::erase_if(before, [&](const auto& kv) { return kv.first != opts.branch; });
  }
  for (;;) {
    Heads now = current_heads(c, opts.branch);
    CommitEvents result{changes(c, before, now), format_cursor(now)};
    if (!result.events.empty() || std::chrono::steady_clock::now() >= deadline) return result;
    before = std::move(now);  // nothing new: deleted or new empty branches only
    // Sleep until a head moves; wake every 100 ms only to ask `cancelled`
    // (memory, not the store) when there is one.
    for (;;) {
      auto until = deadline;
      if (opts.cancelled) until = std::min(until, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
      std::uint64_t g = watcher.wait(gen, until);
      if (g != gen) {
        gen = g;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      if (opts.cancelled && opts.cancelled()) return {{}, format_cursor(before)};
    }
  }
}

Result<CommitEvents> LocalStore::wait_commits(const WaitOptions& opts) {
  return guard([&] {
    DirWatcher* w;
    {
      std::lock_guard lock(watcher_mu_);
      if (!watcher_) watcher_ = std::make_unique<DirWatcher>(path_ / "meta" / "branches");
      w = watcher_.get();
    }
    return wait_for_commits(*this, *w, opts);
  });
}

}  // namespace pfs::detail
