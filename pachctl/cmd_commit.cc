// commit, list-commit (log), inspect-commit, delete-commit, diff, revert, merge.
#include <set>

#include <fmt/core.h>

#include "cli.h"

namespace pachctl {

namespace {

std::string short_id(const std::string& id) { return id.empty() ? "-" : id.substr(0, 12); }

void print_commit(const pfs::CommitInfo& c) {
  fmt::print("Commit:   {}\n", c.id);
  fmt::print("Parent:   {}\n", c.parent.empty() ? "-" : c.parent);
  if (!c.merge_parent.empty()) fmt::print("Merged:   {}\n", c.merge_parent);
  fmt::print("Branch:   {}\n", c.branch);
  fmt::print("Time:     {}\n", pfs::format_time_utc(c.time_ns));
  fmt::print("Files:    {}\n", c.stats.files);
  fmt::print("Size:     {} ({} bytes)\n", human_size(c.stats.bytes), c.stats.bytes);
  fmt::print("Message:  {}\n", c.message);
}

struct CommitOptions {
  std::string branch = "master", message;
  bool run = false, detach = false;
};

struct LogOptions {
  std::string branch = "master";
  bool all = false;
  bool follow = false;
  std::size_t limit = 0;
};

int run_log(const LogOptions& o, Context& ctx) {
  auto* c = ctx.client();
  if (!c) return ctx.status();
  pfs::LogOptions opts;
  opts.branch = o.branch;
  opts.all = o.all;
  if (o.limit) opts.limit = o.limit;
  std::string cursor;
  if (o.follow) {
    auto cur = follow_cursor(*c, o.all ? "" : o.branch);
    if (!cur) return ctx.fail(cur.error());
    cursor = *cur;
  }
  auto r = c->list_commits(opts);
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) {
    if (o.follow) {  // JSON Lines, oldest first: {"branch", "commit"} as wait-commit's events
      for (auto it = r->rbegin(); it != r->rend(); ++it)
        fmt::print("{}\n", nlohmann::json(pfs::CommitEvent{o.all ? it->branch : o.branch, *it}).dump());
      std::fflush(stdout);
      return follow_from(*c, o.all ? "" : o.branch, cursor, ctx);
    }
    ctx.print_json(*r);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{
      {"ID", "PARENT", "BRANCH", "TIME (UTC)", "FILES", "SIZE", "MESSAGE"}};
  for (const auto& ci : *r) {
    std::string msg = ci.message.substr(0, ci.message.find('\n'));
    if (!ci.merge_parent.empty() && msg.empty()) msg = "(merge)";
    rows.push_back({ci.id, short_id(ci.parent), ci.branch, short_time(ci.time_ns),
                    std::to_string(ci.stats.files), human_size(ci.stats.bytes), msg});
  }
  print_table(rows);
  if (o.follow) {
    std::fflush(stdout);
    return follow_from(*c, o.all ? "" : o.branch, cursor, ctx);
  }
  return 0;
}

struct DiffOptions {
  std::string from, to;
  bool exit_code = false;
};

int run_diff(const DiffOptions& o, Context& ctx) {
  auto* c = ctx.client();
  if (!c) return ctx.status();
  auto r = c->diff(pfs::Ref::any(o.from), pfs::Ref::any(o.to));
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) {
    ctx.print_json(*r);
  } else if (!r->empty()) {
    std::vector<std::vector<std::string>> rows{{"CHANGE", "PATH", "OLD SIZE", "NEW SIZE"}};
    for (const auto& d : *r) {
      bool added = d.change == pfs::DiffEntry::Change::kAdded;
      bool deleted = d.change == pfs::DiffEntry::Change::kDeleted;
      rows.push_back({std::string(pfs::change_name(d.change)), d.path,
                      added ? "-" : human_size(d.old_size),
                      deleted ? "-" : human_size(d.new_size)});
    }
    print_table(rows);
  }
  return o.exit_code && !r->empty() ? 1 : 0;
}

struct RevertOptions {
  std::string branch = "master", commit, message;
  bool force = false;
};

struct MergeOptions {
  std::string into = "master", from, message, on_conflict = "fail";
};

int run_merge(const MergeOptions& o, Context& ctx) {
  auto* c = ctx.client();
  if (!c) return ctx.status();
  pfs::MergeOptions opts;
  opts.message = o.message;
  if (o.on_conflict == "ours") opts.on_conflict = pfs::MergeOptions::Strategy::kOurs;
  if (o.on_conflict == "theirs") opts.on_conflict = pfs::MergeOptions::Strategy::kTheirs;
  auto r = c->merge(o.into, o.from, opts);
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) ctx.print_json(*r);
  if (r->up_to_date) {
    if (!ctx.globals.json)
      fmt::print(stderr, "Already up to date: \"{}\" has everything of \"{}\".\n", o.into, o.from);
    return 0;
  }
  if (!r->commit) {
    if (!ctx.globals.json)
      for (const auto& p : r->conflicts) fmt::print("conflict  {}\n", p);
    return ctx.fail(
        pfs::ErrorCode::kConflict,
        fmt::format("merge of \"{}\" into \"{}\" stopped: {} path(s) changed differently on "
                    "both sides; nothing was changed (make them agree and merge again, or "
                    "pick a side with --on-conflict ours|theirs)",
                    o.from, o.into, r->conflicts.size()));
  }
  for (const auto& p : r->conflicts)
    fmt::print(stderr, "pachctl: conflict on {} resolved as {}\n", p, o.on_conflict);
  if (!ctx.globals.json) fmt::print("{}\n", r->commit->id);
  return 0;
}

}  // namespace

void setup_commit_commands(CLI::App& app, Context& ctx) {
  auto co = std::make_shared<CommitOptions>();
  auto* s =
      app.add_subcommand("commit", "Commit a branch's working state; prints the new commit id");
  s->add_option("-b,--branch", co->branch, "The branch")
      ->capture_default_str()
      ->type_name("BRANCH");
  s->add_option("-m,--message", co->message, "A message describing the commit");
  s->add_flag("--run", co->run,
              "Run the commit's jobs (job/*) and wait for them; exit 5 if one does not succeed");
  s->add_flag("-d,--detach", co->detach, "With --run: do not wait for the runs (with --address only)");
  s->footer(footer({"pachctl commit -m \"January data\"", "pachctl commit -b dev",
                    "pachctl commit --run", "C=$(pachctl --address http://127.0.0.1:8080 commit --run --detach)"},
                   "0 success; 2 invalid branch name; 3 branch not found; with --run: 5 a run did not succeed, "
                   "6 another process runs this store's jobs (use --address), 10 jobs cannot run here (not "
                   "root, or runc missing)."));
  add_runner(s, [co, &ctx]() -> int {
    if (co->detach && (!co->run || ctx.address().empty()))
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      "--detach goes with --run and a server (--address): a local run ends with this process");
    if (co->run) {
      auto* j = ctx.jobs();
      if (!j) return ctx.status();
      auto r = j->commit_and_run(co->branch, co->message);
      if (!r) return ctx.fail(r.error());
      if (!ctx.globals.json) {
        fmt::print("{}\n", r->id);
        std::fflush(stdout);
      }
      int st = co->detach ? 0 : wait_for_runs(*j, r->id, ctx);
      if (ctx.globals.json) {
        nlohmann::json out = *r;
        if (auto runs = j->list_runs(r->id)) out["runs"] = *runs;
        ctx.print_json(out);
      }
      return st;
    }
    auto* c = ctx.client();
    if (!c) return ctx.status();
    auto r = c->commit(co->branch, co->message);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json)
      ctx.print_json(*r);
    else
      fmt::print("{}\n", r->id);
    return 0;
  });

  auto log = std::make_shared<LogOptions>();
  s = app.add_subcommand("list-commit", "List a branch's commits, newest first");
  s->alias("log");
  s->add_option("-b,--branch", log->branch, "The branch whose history to list")
      ->capture_default_str()
      ->type_name("BRANCH");
  auto* all = s->add_flag("-a,--all", log->all, "List every commit of the store, newest first");
  s->get_option("--branch")->excludes(all);
  s->add_option("-n,--limit", log->limit, "At most this many commits")
      ->type_name("N")
      ->check(CLI::Range(1, 1000000000));
  s->add_flag("-f,--follow", log->follow,
              "Then print new commits as they are made, until stopped (with --json: one per line)");
  s->footer(footer({"pachctl list-commit", "pachctl log -b dev -n 5", "pachctl log --all --json",
                    "pachctl log -f -n 10"},
                   "0 success; 2 invalid branch name or option; 3 branch not found."));
  add_runner(s, [log, &ctx] { return run_log(*log, ctx); });

  auto commit_arg = std::make_shared<std::string>();
  s = app.add_subcommand("inspect-commit", "Show one commit");
  s->add_option("COMMIT", *commit_arg, "Commit id, unique prefix, or branch name (its head)")
      ->required();
  s->footer(footer(
      {"pachctl inspect-commit 3f2a9c1d", "pachctl inspect-commit master --json"},
      "0 success; 2 ambiguous prefix; 3 no such commit or branch, or the branch has no commit."));
  add_runner(s, [commit_arg, &ctx]() -> int {
    auto* c = ctx.client();
    if (!c) return ctx.status();
    auto r = c->inspect_commit(*commit_arg);
    if (!r) return ctx.fail(r.error());
    // A pipeline's output: the run that made it and the commits it was
    // computed from, following upstream pipelines' outputs (their records
    // on branch _pipelines, docs/pipelines.md).
    std::string run;
    std::vector<std::pair<std::string, std::string>> prov;  // branch, commit
    std::set<std::string> seen;
    std::vector<std::string> todo = {r->id};
    while (!todo.empty()) {
      std::string id = todo.back();
      todo.pop_back();
      if (!seen.insert(id).second) continue;
      std::string text;
      auto sink = pfs::Sink::to_string(&text);
      if (!c->get_file(pfs::Ref::branch("_pipelines"), "outputs/" + id + ".json", *sink)) continue;
      auto j = nlohmann::json::parse(text, nullptr, false);
      if (!j.is_object()) continue;
      if (id == r->id) run = j.value("run", "");
      for (const auto& p : j.value("provenance", nlohmann::json::array())) {
        prov.emplace_back(p.value("branch", ""), p.value("commit", ""));
        todo.push_back(p.value("commit", ""));
      }
    }
    if (ctx.globals.json) {
      nlohmann::json j = *r;
      if (!run.empty()) {
        j["run"] = run;
        j["provenance"] = nlohmann::json::array();
        for (const auto& [b, id] : prov) j["provenance"].push_back({{"branch", b}, {"commit", id}});
      }
      ctx.print_json(j);
    } else {
      print_commit(*r);
      if (!run.empty()) {
        fmt::print("Run:      {}\n", run);
        for (std::size_t i = 0; i < prov.size(); i++)
          fmt::print("{}{}@{}\n", i ? "          " : "From:     ", prov[i].first, prov[i].second);
      }
    }
    return 0;
  });

  auto del_arg = std::make_shared<std::string>();
  s = app.add_subcommand("delete-commit", "Delete a commit that no branch or commit depends on");
  s->add_option("COMMIT", *del_arg, "Commit id or unique prefix")->required();
  s->footer(footer({"pachctl delete-commit 3f2a9c1d"},
                   "0 success; 2 ambiguous prefix; 3 no such commit; 5 a branch head or a parent "
                   "of another commit."));
  add_runner(s, [del_arg, &ctx]() -> int {
    auto* c = ctx.client();
    if (!c) return ctx.status();
    auto r = c->delete_commit(*del_arg);
    if (!r) return ctx.fail(r.error());
    return 0;
  });

  auto diff = std::make_shared<DiffOptions>();
  s = app.add_subcommand("diff", "Show files added, modified and deleted from FROM to TO");
  s->add_option("FROM", diff->from, "Commit (id or prefix) or branch (its working state)")
      ->required();
  s->add_option("TO", diff->to, "Commit (id or prefix) or branch (its working state)")->required();
  s->add_flag("--exit-code", diff->exit_code, "Exit with status 1 when there are differences");
  s->footer(footer(
      {"pachctl diff 3f2a9c1d master", "pachctl diff master dev --json",
       "pachctl diff --exit-code 3f2a9c1d dev"},
      "0 success (no differences, or any without --exit-code); 1 differences with --exit-code; "
      "2 ambiguous prefix; 3 commit or branch not found."));
  add_runner(s, [diff, &ctx] { return run_diff(*diff, ctx); });

  auto rev = std::make_shared<RevertOptions>();
  s = app.add_subcommand("revert",
                         "Make a branch hold a prior commit's files again, as a new commit");
  s->add_option("-b,--branch", rev->branch, "The branch to revert")
      ->capture_default_str()
      ->type_name("BRANCH");
  s->add_option("-m,--message", rev->message,
                "Message of the new commit (default: \"revert to ID\")");
  s->add_flag("-f,--force", rev->force, "Discard the branch's uncommitted changes");
  s->add_option("COMMIT", rev->commit, "The commit whose files to restore")->required();
  s->footer(
      footer({"pachctl revert 3f2a9c1d",
              "pachctl revert -b dev --force -m \"back to the last good state\" 3f2a9c1d"},
             "0 success; 2 invalid branch name or ambiguous prefix; 3 branch or commit not found; "
             "5 the branch has uncommitted changes (commit them, or --force)."));
  add_runner(s, [rev, &ctx]() -> int {
    auto* c = ctx.client();
    if (!c) return ctx.status();
    pfs::RevertOptions opts;
    opts.force = rev->force;
    opts.message = rev->message;
    auto r = c->revert(rev->branch, rev->commit, opts);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json)
      ctx.print_json(*r);
    else
      fmt::print("{}\n", r->id);
    return 0;
  });

  auto merge = std::make_shared<MergeOptions>();
  s = app.add_subcommand("merge", "Merge a branch's head into another branch (three-way, by file)");
  s->add_option("-b,--branch,--into", merge->into, "The branch to merge into")
      ->capture_default_str()
      ->type_name("INTO");
  s->add_option("-m,--message", merge->message, "Message of the merge commit");
  s->add_option("--on-conflict", merge->on_conflict, "fail (change nothing), ours or theirs")
      ->capture_default_str()
      ->check(CLI::IsMember({"fail", "ours", "theirs"}));
  s->add_option("FROM_BRANCH", merge->from, "The branch whose changes to take")->required();
  s->footer(
      footer({"pachctl merge dev", "pachctl merge -b release --on-conflict theirs hotfix"},
             "0 merged, or already up to date; 2 invalid branch name or a branch into itself; "
             "3 branch not found; 5 conflicts (listed on stdout, nothing changed) or INTO has "
             "uncommitted changes."));
  add_runner(s, [merge, &ctx] { return run_merge(*merge, ctx); });
}

}  // namespace pachctl
