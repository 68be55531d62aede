// clone, push, pull (pfs::replicate between two stores or servers), and
// their halves send and receive (one commit as a btrfs send stream).
#include <unistd.h>

#include <fmt/core.h>
#include <pfs/replicate.h>

#include "cli.h"

namespace pachctl {

namespace {

struct ReplicateArgs {
  std::string src, dst;
  std::string branch;
  std::string backend = "auto";
  bool force = false;
};

nlohmann::json result_json(const pfs::ReplicateResult& r) {
  return {{"commits", r.commits},       {"bytes", r.bytes},         {"updated", r.updated},
          {"up_to_date", r.up_to_date}, {"refused", r.refused}};
}

// Runs replicate with a progress bar on a terminal and prints what it did.
int replicate(Context& ctx, pfs::Client& from, pfs::Client& to, const ReplicateArgs& a) {
  pfs::ReplicateOptions opts;
  opts.branch = a.branch;
  opts.force = a.force;
  std::unique_ptr<ProgressBar> bar;
  if (::isatty(STDERR_FILENO)) {
    opts.progress = [&bar](const pfs::ReplicateProgress& p) {
      if (p.finished) {
        bar.reset();
        return;
      }
      if (!bar) bar = std::make_unique<ProgressBar>();
      pfs::Progress q;
      q.upload = true;
      q.done = p.bytes;
      bar->update(q, fmt::format("commit {}/{}", std::min(p.commits_done + 1, p.commits_total),
                                 p.commits_total));
    };
  }
  auto r = pfs::replicate(from, to, opts);
  bar.reset();
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) {
    ctx.print_json(result_json(*r));
  } else {
    fmt::print("sent {} commit{} ({})\n", r->commits.size(), r->commits.size() == 1 ? "" : "s",
               human_size(r->bytes));
    for (const auto& b : r->updated) fmt::print("branch {}: updated\n", b);
    for (const auto& b : r->up_to_date) fmt::print("branch {}: up to date\n", b);
  }
  // Refused branches: the rest is done, but the run did not do all it was
  // asked to, so it fails (exit 5) with each reason.
  for (const auto& why : r->refused) ctx.fail(pfs::ErrorCode::kConflict, why);
  return ctx.status();
}

pfs::BackendKind backend_kind(const std::string& s) {
  if (s == "btrfs") return pfs::BackendKind::kBtrfs;
  if (s == "portable") return pfs::BackendKind::kPortable;
  return pfs::BackendKind::kAuto;
}

// Reads stdin for receive.
class StdinSource final : public pfs::Source {
 public:
  pfs::Result<std::size_t> read(std::span<char> buf) override {
    for (;;) {
      ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR)
        return pfs::Error{pfs::ErrorCode::kIo, fmt::format("read stdin: {}", std::strerror(errno))};
    }
  }
};

}  // namespace

void setup_replication_commands(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<ReplicateArgs>();

  auto* s = app.add_subcommand(
      "clone", "Copy a store (or server) with its whole history into a new store (or empty server)");
  s->add_option("SRC", a->src, "The store's directory, or a server's URL")->required();
  s->add_option("DST", a->dst, "A new store's directory, or the URL of a server with no commits")
      ->required();
  s->add_option("-b,--branch", a->branch, "Copy only this branch and the history it reaches");
  s->add_option("--backend", a->backend,
                 "For a new local store: auto, btrfs or portable (default: $PFS_BACKEND, else auto)")
      ->envname("PFS_BACKEND")
      ->check(CLI::IsMember({"auto", "btrfs", "portable"}));
  s->footer(footer({"pachctl clone /data/pfs /backup/pfs",
                    "pachctl clone http://10.0.0.5:8080 ./copy",
                    "pachctl clone -b master /data/pfs http://127.0.0.1:8080"},
                   "0 success; 2 bad arguments or a bad stream; 3 SRC or the branch not found; "
                   "4 DST holds a store with commits already (use push or pull); 9 I/O error."));
  add_runner(s, [a, &ctx]() -> int {
    auto from = ctx.open_end(a->src);
    if (!from) return ctx.status();
    if (!a->branch.empty()) {  // before a store is made for nothing
      auto b = from->inspect_branch(a->branch);
      if (!b) return ctx.fail(b.error());
    }
    std::unique_ptr<pfs::Client> to;
    if (is_url(a->dst)) {
      to = ctx.open_end(a->dst);
      if (!to) return ctx.status();
      pfs::LogOptions all;
      all.all = true;
      all.limit = 1;
      auto commits = to->list_commits(all);
      if (!commits) return ctx.fail(commits.error());
      if (!commits->empty())
        return ctx.fail(pfs::ErrorCode::kAlreadyExists,
                        fmt::format("the store of {} has commits already; clone needs an empty one "
                                    "(update it with: pachctl push {})",
                                    a->dst, a->dst));
    } else {
      pfs::InitOptions io;
      io.backend = backend_kind(a->backend);
      auto made = pfs::init_store(a->dst, io);
      if (!made) {
        if (made.error().code == pfs::ErrorCode::kAlreadyExists)
          return ctx.fail(pfs::ErrorCode::kAlreadyExists,
                          fmt::format("{} (update it with: pachctl --store {} pull {})",
                                      made.error().message, a->dst, a->src));
        return ctx.fail(made.error());
      }
      to = ctx.open_end(a->dst);
      if (!to) return ctx.status();
    }
    return replicate(ctx, *from, *to, *a);
  });

  auto push = std::make_shared<ReplicateArgs>();
  s = app.add_subcommand("push", "Send the commits another store (or server) lacks, and move its branches");
  s->add_option("DST", push->dst, "The other store's directory, or a server's URL")->required();
  s->add_option("-b,--branch", push->branch, "Push only this branch");
  s->add_flag("-f,--force", push->force,
              "Move branches that diverged or have uncommitted changes there (their commits stay)");
  s->footer(footer({"pachctl push /backup/pfs", "pachctl push -b master http://10.0.0.5:8080"},
                   "0 success; 2 bad arguments or a bad stream; 3 DST or the branch not found; "
                   "5 a branch there diverged or has uncommitted changes (the rest is pushed); "
                   "9 I/O error."));
  add_runner(s, [push, &ctx]() -> int {
    auto* from = ctx.client();
    if (!from) return ctx.status();
    auto to = ctx.open_end(push->dst);
    if (!to) return ctx.status();
    return replicate(ctx, *from, *to, *push);
  });

  auto pull = std::make_shared<ReplicateArgs>();
  s = app.add_subcommand("pull", "Fetch the commits this store lacks from another, and move its branches");
  s->add_option("SRC", pull->src, "The other store's directory, or a server's URL")->required();
  s->add_option("-b,--branch", pull->branch, "Pull only this branch");
  s->add_flag("-f,--force", pull->force,
              "Move branches that diverged or have uncommitted changes here (their commits stay)");
  s->footer(footer({"pachctl pull http://10.0.0.5:8080", "pachctl --store /backup/pfs pull /data/pfs"},
                   "0 success; 2 bad arguments or a bad stream; 3 SRC or the branch not found; "
                   "5 a branch here diverged or has uncommitted changes (the rest is pulled); "
                   "9 I/O error."));
  add_runner(s, [pull, &ctx]() -> int {
    auto from = ctx.open_end(pull->src);
    if (!from) return ctx.status();
    auto* to = ctx.client();
    if (!to) return ctx.status();
    return replicate(ctx, *from, *to, *pull);
  });

  auto send = std::make_shared<std::pair<std::string, std::string>>();  // commit, parent
  s = app.add_subcommand("send", "Write a commit's tree to stdout as a btrfs send stream");
  s->add_option("COMMIT", send->first, "Commit id, unique prefix, or branch name (its head)")
      ->required();
  s->add_option("-p,--parent", send->second,
                "Send only the changes since this commit (the receiver must have it)");
  s->footer(footer({"pachctl send master > master.stream",
                    "pachctl send -p 3f2a9c1d master | btrfs receive /mnt/backup",
                    "pachctl send master | pachctl --store /other receive -b imported"},
                   "0 success; 2 stdout is a terminal, or bad arguments; 3 COMMIT or PARENT not "
                   "found; 9 I/O error (the stream is cut short)."));
  add_runner(s, [send, &ctx]() -> int {
    if (::isatty(STDOUT_FILENO))
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      "send writes a binary stream; redirect stdout to a file or a pipe");
    auto* c = ctx.client();
    if (!c) return ctx.status();
    auto out = pfs::Sink::to_fd(STDOUT_FILENO);
    pfs::SendOptions so;
    so.parent = send->second;
    auto r = c->send(send->first, *out, so);
    if (!r) return ctx.fail(r.error());
    return 0;
  });

  auto recv = std::make_shared<pfs::ReceiveOptions>();
  s = app.add_subcommand("receive", "Read a btrfs send stream from stdin and commit its tree");
  s->add_option("-b,--branch", recv->branch, "The branch to commit on (made if absent; default: master)");
  s->add_option("-p,--parent", recv->parent,
                "The commit an incremental stream was made against (default: the one it names)");
  s->footer(footer({"pachctl receive -b imported < master.stream",
                    "btrfs send /mnt/snapshots/day1 | pachctl receive -b day1"},
                   "0 success; 2 stdin is a terminal, or a bad, truncated or hostile stream "
                   "(nothing is changed); 3 the stream's parent commit not found; 5 the branch "
                   "has uncommitted changes; 9 I/O error."));
  add_runner(s, [recv, &ctx]() -> int {
    if (::isatty(STDIN_FILENO))
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      "receive reads a btrfs send stream from stdin; redirect it from a file or a pipe");
    auto* c = ctx.client();
    if (!c) return ctx.status();
    StdinSource in;
    auto r = c->receive(in, *recv);
    if (!r) return ctx.fail(r.error());
    for (const auto& p : r->skipped)
      fmt::print(stderr, "pachctl: skipped \"{}\": not a regular file or directory\n", p);
    if (ctx.globals.json) {
      ctx.print_json(*r);
      return 0;
    }
    fmt::print("{}\n", r->commit.id);
    return 0;
  });
}

}  // namespace pachctl
