// branch, list-branch, delete-branch.
#include <fmt/core.h>

#include "cli.h"

namespace pachctl {

namespace {

struct BranchOptions {
  std::string name, commit;
};

int run_list(Context& ctx) {
  auto* c = ctx.client();
  if (!c) return ctx.status();
  auto r = c->list_branches();
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) {
    ctx.print_json(*r);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"BRANCH", "HEAD", "CHANGES", "FILES", "SIZE"}};
  for (const auto& b : *r)
    rows.push_back({b.name, b.head.empty() ? "-" : b.head, b.dirty ? "uncommitted" : "-",
                    std::to_string(b.stats.files), human_size(b.stats.bytes)});
  print_table(rows);
  return 0;
}

}  // namespace

void setup_branch_commands(CLI::App& app, Context& ctx) {
  auto br = std::make_shared<BranchOptions>();
  auto* s = app.add_subcommand("branch", "Create a branch from a commit (default: master's head)");
  s->add_option("NAME", br->name, "The new branch's name")->required();
  s->add_option("COMMIT", br->commit, "Commit id, unique prefix, or branch name (its head)");
  s->footer(footer(
      {"pachctl branch dev", "pachctl branch fix-2026 3f2a9c1d"},
      "0 success; 2 invalid name or ambiguous prefix; 3 COMMIT not found; 4 the branch exists."));
  add_runner(s, [br, &ctx]() -> int {
    auto* c = ctx.client();
    if (!c) return ctx.status();
    auto r = c->create_branch(br->name, br->commit);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) ctx.print_json(*r);
    return 0;
  });

  s = app.add_subcommand("list-branch", "List branches with their heads");
  s->footer(footer({"pachctl list-branch", "pachctl list-branch --json"},
                   "0 success; 3 no store there."));
  add_runner(s, [&ctx] { return run_list(ctx); });

  auto del = std::make_shared<std::string>();
  s = app.add_subcommand("delete-branch",
                         "Delete a branch and its uncommitted changes (its commits stay)");
  s->add_option("NAME", *del, "The branch")->required();
  s->footer(footer({"pachctl delete-branch experiment"},
                   "0 success; 2 invalid name; 3 branch not found."));
  add_runner(s, [del, &ctx]() -> int {
    auto* c = ctx.client();
    if (!c) return ctx.status();
    auto r = c->delete_branch(*del);
    if (!r) return ctx.fail(r.error());
    return 0;
  });
}

}  // namespace pachctl
