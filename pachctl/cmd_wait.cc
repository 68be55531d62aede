// wait-commit, and list-commit --follow: commit events (Client::wait_commits).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>

#include <fmt/core.h>

#include "cli.h"

namespace pachctl {

namespace {

// One long wait is cut into waits of this many milliseconds, so an endless
// wait (the default) never needs a huge deadline, and a remote wait stays
// one modest long-poll request at a time.
constexpr std::int64_t kSliceMs = 25000;

std::vector<std::string> event_row(const pfs::CommitEvent& e) {
  const auto& ci = e.commit;
  std::string msg = ci.message.substr(0, ci.message.find('\n'));
  if (!ci.merge_parent.empty() && msg.empty()) msg = "(merge)";
  // The columns of list-commit; BRANCH is the branch that gained the commit.
  return {ci.id, ci.parent.empty() ? "-" : ci.parent.substr(0, 12), e.branch, short_time(ci.time_ns),
          std::to_string(ci.stats.files), human_size(ci.stats.bytes), msg};
}

// Waits until commits arrive or `timeout_s` seconds pass (0: for ever).
// Returns the events (empty on a timeout), with the cursor to go on from.
pfs::Result<pfs::CommitEvents> wait_slices(pfs::Client& c, pfs::WaitOptions opts, double timeout_s) {
  using clock = std::chrono::steady_clock;
  bool forever = timeout_s <= 0;
  auto deadline = clock::now() + std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000));
  for (;;) {
    std::int64_t left = kSliceMs;
    if (!forever)
      left = std::min<std::int64_t>(
          kSliceMs, std::max<std::int64_t>(
                        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count()));
    opts.timeout_ms = left;
    auto r = c.wait_commits(opts);
    if (!r || !r->events.empty() || (!forever && clock::now() >= deadline)) return r;
    opts.since = r->cursor;  // nothing yet: go on exactly from here
  }
}

struct WaitCommitOptions {
  std::string branch, since, cursor_file;
  double timeout = 0;
};

bool read_cursor_file(const std::string& path, std::string& cursor, Context& ctx) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return true;  // first run: from now
    ctx.fail(errno_code(errno), os_error("read cursor file " + path, errno));
    return false;
  }
  std::getline(in, cursor);
  return true;
}

// Replaces the cursor file atomically (a crash leaves the old or the new one).
bool write_cursor_file(const std::string& path, const std::string& cursor, Context& ctx) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ctx.fail(errno_code(errno), os_error("write cursor file " + tmp, errno)), false;
  std::string text = cursor + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    ::unlink(tmp.c_str());
    ctx.fail(errno_code(err), os_error("write cursor file " + path, err));
    return false;
  }
  return true;
}

int run_wait_commit(const WaitCommitOptions& o, Context& ctx) {
  auto* c = ctx.client();
  if (!c) return ctx.status();
  pfs::WaitOptions opts;
  opts.branch = o.branch;
  opts.since = o.since;
  if (!o.cursor_file.empty() && o.since.empty() && !read_cursor_file(o.cursor_file, opts.since, ctx))
    return ctx.status();
  auto r = wait_slices(*c, opts, o.timeout);
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) {
    ctx.print_json(*r);
  } else if (!r->events.empty()) {
    std::vector<std::vector<std::string>> rows{
        {"ID", "PARENT", "BRANCH", "TIME (UTC)", "FILES", "SIZE", "MESSAGE"}};
    for (const auto& e : r->events) rows.push_back(event_row(e));
    print_table(rows);
  }
  std::fflush(stdout);
  // The cursor moves only after the commits were printed: a script that
  // dies before reading them sees them again.
  if (!o.cursor_file.empty() && !write_cursor_file(o.cursor_file, r->cursor, ctx)) return ctx.status();
  if (!ctx.globals.json) fmt::print(stderr, "cursor: {}\n", r->cursor);
  if (r->events.empty()) {
    if (!ctx.globals.json)
      fmt::print(stderr, "pachctl: no new commit on {} within {} s\n",
                 o.branch.empty() ? "any branch" : "\"" + o.branch + "\"", o.timeout);
    return 124;  // as timeout(1)
  }
  return 0;
}

}  // namespace

pfs::Result<std::string> follow_cursor(pfs::Client& c, const std::string& branch) {
  pfs::WaitOptions opts;
  opts.branch = branch;
  opts.timeout_ms = 0;
  auto r = c.wait_commits(opts);
  if (!r) return r.error();
  return r->cursor;
}

int follow_from(pfs::Client& c, const std::string& branch, std::string cursor, Context& ctx) {
  pfs::WaitOptions opts;
  opts.branch = branch;
  opts.since = std::move(cursor);
  for (;;) {
    auto r = wait_slices(c, opts, 0);
    if (!r) return ctx.fail(r.error());
    opts.since = r->cursor;
    if (ctx.globals.json) {
      for (const auto& e : r->events) fmt::print("{}\n", nlohmann::json(e).dump());
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& e : r->events) rows.push_back(event_row(e));
      print_table(rows);
    }
    std::fflush(stdout);
  }
}

void setup_wait_commands(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<WaitCommitOptions>();
  auto* s = app.add_subcommand(
      "wait-commit", "Wait for new commits on a branch (or any branch) and print them");
  s->add_option("BRANCH", o->branch, "The branch to watch (default: every branch)");
  s->add_option("--since", o->since, "Resume after this cursor (printed by an earlier wait)")
      ->type_name("CURSOR");
  s->add_option("--cursor-file", o->cursor_file,
                "Resume from the cursor in FILE (if it exists) and store the new one there")
      ->type_name("FILE");
  s->add_option("-t,--timeout", o->timeout, "Give up after this many seconds (default: wait for ever)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.0, 1e9));
  s->footer(footer({"pachctl wait-commit master", "pachctl wait-commit --timeout 60 --json",
                    "while pachctl wait-commit master --cursor-file .cursor; do make report; done"},
                   "0 new commits printed; 2 invalid branch name, cursor or option; 124 no new "
                   "commit within --timeout."));
  add_runner(s, [o, &ctx] { return run_wait_commit(*o, ctx); });
}

}  // namespace pachctl
