// init, status, fsck: commands about the store as a whole.
#include <fmt/core.h>

#include "cli.h"

namespace pachctl {

namespace {

struct InitOptions {
  std::string dir;
  std::string backend = "auto";
};

int run_init(const InitOptions& o, Context& ctx) {
  if (!ctx.address().empty())
    return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                    "init makes a local store; run it on the server's machine (without --address)");
  pfs::InitOptions opts;
  if (o.backend == "btrfs")
    opts.backend = pfs::BackendKind::kBtrfs;
  else if (o.backend == "portable")
    opts.backend = pfs::BackendKind::kPortable;
  std::string dir = o.dir.empty() ? ctx.store_dir() : o.dir;
  auto info = pfs::init_store(dir, opts);
  if (!info) return ctx.fail(info.error());
  if (ctx.globals.json)
    ctx.print_json(*info);
  else
    fmt::print("Initialized empty pfs store in {} (backend: {})\n", info->path, info->backend);
  return 0;
}

int run_status(Context& ctx) {
  auto* c = ctx.client();
  if (!c) return ctx.status();
  auto info = c->info();
  if (!info) return ctx.fail(info.error());
  if (ctx.globals.json) {
    ctx.print_json(*info);
    return 0;
  }
  fmt::print("Store:    {}\nBackend:  {}\nFormat:   {}\nBranches: {}\nCommits:  {}\n", info->path,
             info->backend, info->format, info->branches, info->commits);
  return 0;
}

int run_fsck(bool repair, Context& ctx) {
  auto* c = ctx.client();
  if (!c) return ctx.status();
  auto r = c->fsck(repair);
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) {
    ctx.print_json(*r);
  } else {
    for (const auto& s : r->repaired) fmt::print("repaired: {}\n", s);
    for (const auto& s : r->leftovers) fmt::print("leftover: {}\n", s);
    for (const auto& s : r->problems) fmt::print("problem: {}\n", s);
    fmt::print("{}: checked {} commits and {} branches; problems: {}, leftovers: {}\n",
               r->problems.empty() ? "ok" : "FAILED", r->commits_checked, r->branches_checked,
               r->problems.size(), r->leftovers.size());
  }
  return r->problems.empty() ? 0 : 1;
}

int run_gc(Context& ctx) {
  auto* c = ctx.client();
  if (!c) return ctx.status();
  auto r = c->gc();
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) {
    ctx.print_json(*r);
    return 0;
  }
  fmt::print("removed {} objects ({}); kept {} objects ({})\n", r->objects_removed,
             human_size(r->bytes_removed), r->objects_kept, human_size(r->bytes_kept));
  return 0;
}

}  // namespace

void setup_store_commands(CLI::App& app, Context& ctx) {
  auto init = std::make_shared<InitOptions>();
  auto* s = app.add_subcommand("init", "Create a new, empty store (with branch master)");
  s->add_option("DIR", init->dir,
                "Where (default: the store pachctl uses, see --store); empty or absent");
  s->add_option("--backend", init->backend,
                "auto, btrfs or portable (auto: btrfs where subvolumes can be made, else "
                "portable)")
      ->envname("PFS_BACKEND")
      ->check(CLI::IsMember({"auto", "btrfs", "portable"}));
  s->footer(footer({"pachctl init", "pachctl init /mnt/btrfs/store",
                    "pachctl init --backend portable ~/data/store",
                    "PFS_STORE=/mnt/btrfs/store pachctl init"},
                   "0 success; 2 DIR is not empty; 4 a store is already there; 7 permission "
                   "denied; 10 --backend btrfs, but DIR is not on btrfs or subvolumes cannot be "
                   "made there."));
  add_runner(s, [init, &ctx] { return run_init(*init, ctx); });

  s = app.add_subcommand("status",
                         "Show the store's path, backend, format, branch and commit counts");
  s->footer(footer({"pachctl status", "pachctl status --json"},
                   "0 success; 3 no store there; 8 unreadable store."));
  add_runner(s, [&ctx] { return run_status(ctx); });

  auto repair = std::make_shared<bool>(false);
  s = app.add_subcommand("fsck", "Check the store's consistency (exit 1 if problems remain)");
  s->add_flag("--repair", *repair,
              "Finish interrupted operations, remove their leftovers, recount size figures");
  s->footer(footer({"pachctl fsck", "pachctl fsck --repair", "pachctl fsck --json"},
                   "0 no problems (leftovers of interrupted operations are not problems); "
                   "1 problems found; 3 no store there; 8 unreadable store."));
  add_runner(s, [repair, &ctx] { return run_fsck(*repair, ctx); });

  s = app.add_subcommand("gc",
                         "Remove stored data no commit or branch reaches (portable backend)");
  s->footer(footer({"pachctl delete-commit 3f2a9c1d && pachctl gc", "pachctl gc --json"},
                   "0 success (also when there was nothing to remove, and always on btrfs, "
                   "which frees space at once); 3 no store there; 8 a commit or branch "
                   "refers to a missing object (run pachctl fsck)."));
  add_runner(s, [&ctx] { return run_gc(ctx); });
}

}  // namespace pachctl
