// create-pipeline, update-pipeline, inspect-pipeline, list-pipeline,
// delete-pipeline, stop-pipeline, start-pipeline, list-datum,
// restart-datum, flush-commit, run-datum; and the pipeline halves of
// list-run, inspect-run and get-logs (cmd_jobs.cc calls them).
#include <unistd.h>


#include <fmt/core.h>

#include "cli.h"

namespace pachctl {

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string seconds(std::int64_t ns) {
  double s = static_cast<double>(ns) / 1e9;
  return s < 60 ? fmt::format("{:.1f}s", s) : fmt::format("{}m{:02}s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
}

std::string duration(const pfs::PipelineRun& r) {
  if (!r.started_ns) return "-";
  return seconds((r.finished_ns ? r.finished_ns : now_ns()) - r.started_ns);
}

// "98 processed, 9,902 skipped of 10,000": what a run did with its datums.
std::string datum_summary(const pfs::PipelineRun& r) {
  const auto& d = r.datums;
  std::string s = fmt::format("{}/{}", d.processed + d.skipped + d.recovered + d.failed, d.total);
  std::vector<std::string> parts;
  if (d.processed) parts.push_back(fmt::format("{} processed", d.processed));
  if (d.skipped) parts.push_back(fmt::format("{} skipped", d.skipped));
  if (d.recovered) parts.push_back(fmt::format("{} recovered", d.recovered));
  if (d.failed) parts.push_back(fmt::format("{} failed", d.failed));
  if (!parts.empty()) {
    s += " (";
    for (std::size_t i = 0; i < parts.size(); i++) s += (i ? ", " : "") + parts[i];
    s += ")";
  }
  return s;
}

std::string first_line(const std::string& s, std::size_t max = 80) {
  std::string r = s.substr(0, s.find('\n'));
  if (r.size() > max) r = r.substr(0, max - 3) + "...";
  return r.empty() ? "-" : r;
}

pfs::Pipelines* pipelines(Context& ctx) {
  auto* j = ctx.jobs();
  return j ? &j->pipelines() : nullptr;
}

void print_pipeline(const pfs::PipelineInfo& p) {
  fmt::print("Name:        {}\n", p.spec.name);
  if (!p.spec.description.empty()) fmt::print("Description: {}\n", p.spec.description);
  fmt::print("State:       {}\n", p.stopped ? "stopped" : "running");
  std::string inputs;
  for (const auto& b : pfs::pipeline_inputs(p.spec)) inputs += (inputs.empty() ? "" : ", ") + b;
  fmt::print("Inputs:      {}\n", inputs);
  fmt::print("Output:      branch {}\n", p.spec.name);
  fmt::print("Spec:        version {} ({})\n", p.spec_number, p.version);
  fmt::print("Created:     {}\n", pfs::format_time_utc(p.created_ns));
  fmt::print("Updated:     {}\n", pfs::format_time_utc(p.updated_ns));
  fmt::print("Last run:    {}\n", p.last_run.empty() ? "-" : p.last_run + " (" + p.last_state + ")");
  fmt::print("{}", p.spec_json);
}

void print_pipeline_run(const pfs::PipelineRun& r) {
  fmt::print("Run:         {}\n", r.id);
  fmt::print("Pipeline:    {} (spec {})\n", r.pipeline, r.spec_version);
  fmt::print("State:       {}\n", pfs::pipeline_run_state_name(r.state));
  if (!r.reason.empty()) fmt::print("Reason:      {}\n", r.reason);
  fmt::print("Trigger:     {}\n", r.trigger.empty() ? "-" : r.trigger);
  for (std::size_t i = 0; i < r.provenance.size(); i++)
    fmt::print("{}{}@{}\n", i ? "             " : "Provenance:  ", r.provenance[i].branch,
               r.provenance[i].commit.empty() ? "(no commit)" : r.provenance[i].commit);
  fmt::print("Output:      {}\n", r.output_commit.empty() ? "-"
                                                           : fmt::format("{}@{} ({} files, {})", r.pipeline,
                                                                         r.output_commit, r.output.files,
                                                                         human_size(r.output.bytes)));
  fmt::print("Queued:      {}\n", r.queued_ns ? pfs::format_time_utc(r.queued_ns) : "-");
  fmt::print("Started:     {}\n", r.started_ns ? pfs::format_time_utc(r.started_ns) : "-");
  fmt::print("Finished:    {}\n", r.finished_ns ? pfs::format_time_utc(r.finished_ns) : "-");
  fmt::print("Duration:    {}\n", duration(r));
  fmt::print("Datums:      {}\n", datum_summary(r));
}

void print_datum(const pfs::DatumInfo& d) {
  fmt::print("Datum:    {}\n", d.id);
  fmt::print("State:    {}\n", pfs::datum_state_name(d.state));
  if (!d.error.empty()) fmt::print("Error:    {}\n", d.error);
  fmt::print("Tries:    {}\n", d.tries);
  fmt::print("Duration: {}\n", d.duration_ns ? seconds(d.duration_ns) : "-");
  for (std::size_t i = 0; i < d.files.size(); i++)
    fmt::print("{}/pfs/{}/{}\n", i ? "          " : "Input:    ", d.files[i].input, d.files[i].path);
}

struct PipelineOptions {
  std::string file, name, datum, run, pipeline, commit, output;
  bool reprocess = false, follow = false, all = false;
  double timeout = 3600;
};

// Waits for flush_commit, drawing one progress line on a terminal.
int flush(pfs::Pipelines& p, const std::string& commit, double timeout, Context& ctx) {
  bool tty = ::isatty(STDERR_FILENO);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<std::int64_t>(timeout * 1000));
  std::vector<pfs::PipelineRun> runs;
  bool drawn = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto slice = std::min(left, std::chrono::milliseconds(tty ? 300 : 25000));
    if (slice.count() < 0) slice = std::chrono::milliseconds(0);
    auto r = p.flush_commit(commit, slice);
    if (r) {
      runs = std::move(*r);
      break;
    }
    if (r.error().code != pfs::ErrorCode::kBusy || left.count() <= 0) {
      if (drawn) fmt::print(stderr, "\r\033[K");
      return ctx.fail(r.error());
    }
    if (tty) {
      auto l = p.list_runs(pfs::RunFilter{"", commit});
      std::string line;
      if (l)
        for (auto it = l->rbegin(); it != l->rend(); ++it) {
          if (!line.empty()) line += "  ·  ";
          line += fmt::format("{} {}", it->id, pfs::pipeline_run_state_name(it->state));
          if (it->state == pfs::PipelineRunState::kRunning) line += " " + datum_summary(*it);
        }
      if (line.size() > 150) line = line.substr(0, 147) + "...";
      fmt::print(stderr, "\r\033[K  {}", line.empty() ? "waiting for runs to be queued" : line);
      drawn = true;
    }
  }
  if (drawn) fmt::print(stderr, "\r\033[K");
  if (ctx.globals.json) {
    ctx.print_json(runs);
  } else {
    for (const auto& r : runs)
      fmt::print("{} {}{}{}\n", r.id, pfs::pipeline_run_state_name(r.state), r.reason.empty() ? "" : ": ",
                 r.reason.empty() ? "" : first_line(r.reason, 300));
  }
  std::size_t bad = 0;
  for (const auto& r : runs) bad += r.state != pfs::PipelineRunState::kSuccess;
  if (bad)
    return ctx.fail(pfs::ErrorCode::kConflict,
                    fmt::format("{} of the runs on commit {} did not succeed (see pachctl inspect-run RUN, pachctl "
                                "get-logs --run RUN)",
                                bad, commit));
  return 0;
}

}  // namespace

void print_pipeline_runs(const std::vector<pfs::PipelineRun>& runs, Context& ctx) {
  if (ctx.globals.json) {
    ctx.print_json(runs);
    return;
  }
  std::vector<std::vector<std::string>> rows{{"RUN", "STATE", "DATUMS", "STARTED (UTC)", "DURATION", "OUTPUT", "REASON"}};
  for (const auto& r : runs)
    rows.push_back({r.id, std::string(pfs::pipeline_run_state_name(r.state)), datum_summary(r),
                    r.started_ns ? short_time(r.started_ns) : "-", duration(r),
                    r.output_commit.empty() ? "-" : r.output_commit.substr(0, 12), first_line(r.reason)});
  print_table(rows);
}

int list_pipeline_runs(const std::string& pipeline, const std::string& commit, Context& ctx) {
  auto* p = pipelines(ctx);
  if (!p) return ctx.status();
  auto r = p->list_runs(pfs::RunFilter{pipeline, commit});
  if (!r) return ctx.fail(r.error());
  print_pipeline_runs(*r, ctx);
  return 0;
}

int inspect_pipeline_run(const std::string& id, double wait, Context& ctx) {
  auto* p = pipelines(ctx);
  if (!p) return ctx.status();
  auto r = wait >= 0 ? p->wait_run(id, std::chrono::milliseconds(static_cast<std::int64_t>(wait * 1000)))
                     : p->inspect_run(id);
  if (!r) return ctx.fail(r.error());
  if (ctx.globals.json) ctx.print_json(*r);
  else print_pipeline_run(*r);
  return 0;
}

int pipeline_logs(const pfs::LogFilter& f, Context& ctx) {
  auto* p = pipelines(ctx);
  if (!p) return ctx.status();
  auto sink = pfs::Sink::to_fd(1);
  auto r = p->get_logs(f, *sink);
  if (!r) return ctx.fail(r.error());
  return 0;
}

void setup_pipeline_commands(CLI::App& app, Context& ctx) {
  auto cp = std::make_shared<PipelineOptions>();
  auto* s = app.add_subcommand("create-pipeline",
                               "Create a pipeline from a Pachyderm 2.x spec; it runs on every commit of its inputs");
  s->add_option("-f,--file", cp->file, "The spec: a JSON file, or - for standard input")->required()->type_name("FILE");
  s->footer(footer({"pachctl create-pipeline -f edges.json", "pachctl create-pipeline -f - < montage.json"},
                   "0 success; 2 the spec is invalid (the message names the field) or would close a cycle; 3 an "
                   "input branch or FILE not found; 4 the pipeline, or a branch of its name, exists."));
  add_runner(s, [cp, &ctx]() -> int {
    std::string text;
    if (!read_input_file(cp->file, text, ctx)) return ctx.status();
    auto* p = pipelines(ctx);
    if (!p) return ctx.status();
    auto r = p->create_pipeline(text);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) ctx.print_json(*r);
    else if (ctx.address().empty())
      fmt::print(stderr, "pipeline {} created; without a server it runs when results are asked for "
                         "(pachctl flush-commit BRANCH)\n", r->spec.name);
    return 0;
  });

  auto up = std::make_shared<PipelineOptions>();
  s = app.add_subcommand("update-pipeline", "Replace a pipeline's spec and run it on its inputs' heads");
  s->add_option("-f,--file", up->file, "The spec: a JSON file, or - for standard input")->required()->type_name("FILE");
  s->add_flag("--reprocess", up->reprocess, "Process every datum again, even those whose result could be reused");
  s->footer(footer({"pachctl update-pipeline -f edges.json", "pachctl update-pipeline -f edges.json --reprocess"},
                   "0 success; 2 invalid spec; 3 no such pipeline, or an input branch not found."));
  add_runner(s, [up, &ctx]() -> int {
    std::string text;
    if (!read_input_file(up->file, text, ctx)) return ctx.status();
    auto* p = pipelines(ctx);
    if (!p) return ctx.status();
    auto r = p->update_pipeline(text, up->reprocess);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) ctx.print_json(*r);
    return 0;
  });

  auto ip = std::make_shared<PipelineOptions>();
  s = app.add_subcommand("inspect-pipeline", "Show a pipeline: state, inputs, spec, last run");
  s->add_option("NAME", ip->name, "The pipeline")->required();
  s->footer(footer({"pachctl inspect-pipeline edges"}, "0 success; 2 invalid name; 3 no such pipeline."));
  add_runner(s, [ip, &ctx]() -> int {
    auto* p = pipelines(ctx);
    if (!p) return ctx.status();
    auto r = p->inspect_pipeline(ip->name);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) ctx.print_json(*r);
    else print_pipeline(*r);
    return 0;
  });

  s = app.add_subcommand("list-pipeline", "List the pipelines");
  s->footer(footer({"pachctl list-pipeline", "pachctl list-pipeline --json"}, "0 success."));
  add_runner(s, [&ctx]() -> int {
    auto* p = pipelines(ctx);
    if (!p) return ctx.status();
    auto r = p->list_pipelines();
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) {
      ctx.print_json(*r);
      return 0;
    }
    std::vector<std::vector<std::string>> rows{{"NAME", "STATE", "INPUT", "IMAGE", "LAST RUN", "DESCRIPTION"}};
    for (const auto& x : *r) {
      std::string in;
      for (const auto& b : pfs::pipeline_inputs(x.spec)) in += (in.empty() ? "" : ",") + b;
      rows.push_back({x.spec.name, x.stopped ? "stopped" : "running", in, x.spec.image,
                      x.last_run.empty() ? "-" : x.last_run + " " + x.last_state, first_line(x.spec.description, 50)});
    }
    print_table(rows);
    return 0;
  });

  auto dp = std::make_shared<PipelineOptions>();
  s = app.add_subcommand("delete-pipeline", "Delete a pipeline and its runs' records (its output branch stays)");
  s->add_option("NAME", dp->name, "The pipeline")->required();
  s->footer(footer({"pachctl delete-pipeline edges"},
                   "0 success; 3 no such pipeline; 5 another pipeline reads its output (delete that first)."));
  add_runner(s, [dp, &ctx]() -> int {
    auto* p = pipelines(ctx);
    if (!p) return ctx.status();
    auto r = p->delete_pipeline(dp->name);
    if (!r) return ctx.fail(r.error());
    return 0;
  });

  for (bool stop : {true, false}) {
    auto o = std::make_shared<PipelineOptions>();
    s = app.add_subcommand(stop ? "stop-pipeline" : "start-pipeline",
                           stop ? "Stop running a pipeline (a run in progress keeps the datums it finished)"
                                : "Run a stopped pipeline again: resume its run and catch up with new commits");
    s->add_option("NAME", o->name, "The pipeline")->required();
    s->footer(footer({stop ? "pachctl stop-pipeline edges" : "pachctl start-pipeline edges"},
                     "0 success; 3 no such pipeline."));
    add_runner(s, [o, stop, &ctx]() -> int {
      auto* p = pipelines(ctx);
      if (!p) return ctx.status();
      auto r = stop ? p->stop_pipeline(o->name) : p->start_pipeline(o->name);
      if (!r) return ctx.fail(r.error());
      if (ctx.globals.json) ctx.print_json(*r);
      return 0;
    });
  }

  auto ld = std::make_shared<PipelineOptions>();
  s = app.add_subcommand("list-datum", "List the datums of a pipeline run: state, tries, time, input files");
  s->add_option("RUN", ld->run, "The run: PIPELINE@N")->required();
  s->add_option("--datum", ld->datum, "Show this datum (id or prefix) in full")->type_name("DATUM");
  s->footer(footer({"pachctl list-datum edges@3", "pachctl list-datum edges@3 --datum 9f2c"},
                   "0 success; 2 not a run id; 3 no such run or datum."));
  add_runner(s, [ld, &ctx]() -> int {
    auto* p = pipelines(ctx);
    if (!p) return ctx.status();
    auto r = p->list_datums(ld->run);
    if (!r) return ctx.fail(r.error());
    if (!ld->datum.empty()) {
      std::erase_if(*r, [&](const pfs::DatumInfo& d) { return d.id.rfind(ld->datum, 0) != 0; });
      if (r->empty()) return ctx.fail(pfs::ErrorCode::kNotFound, fmt::format("run {} has no datum {}", ld->run, ld->datum));
    }
    if (ctx.globals.json) {
      ctx.print_json(*r);
      return 0;
    }
    if (!ld->datum.empty()) {
      for (const auto& d : *r) print_datum(d);
      return 0;
    }
    std::vector<std::vector<std::string>> rows{{"DATUM", "STATE", "TRIES", "DURATION", "INPUT", "ERROR"}};
    for (const auto& d : *r) {
      std::string in = d.files.empty() ? "-" : "/pfs/" + d.files[0].input + "/" + d.files[0].path;
      if (d.files.size() > 1) in += fmt::format(" (+{})", d.files.size() - 1);
      rows.push_back({d.id.substr(0, 12), std::string(pfs::datum_state_name(d.state)), std::to_string(d.tries),
                      d.duration_ns ? seconds(d.duration_ns) : "-", in, first_line(d.error, 60)});
    }
    print_table(rows);
    return 0;
  });

  auto rd = std::make_shared<PipelineOptions>();
  s = app.add_subcommand("restart-datum",
                         "Forget a datum's reusable result and run the pipeline again so that it is processed anew");
  s->add_option("PIPELINE", rd->pipeline, "The pipeline")->required();
  s->add_option("DATUM", rd->datum, "The datum's id (or a unique prefix), as list-datum shows")->required();
  s->footer(footer({"pachctl restart-datum edges 9f2c4e1a"},
                   "0 success (prints the run queued); 3 no such pipeline or datum; 6 a server runs this "
                   "store's pipelines (use --address)."));
  add_runner(s, [rd, &ctx]() -> int {
    auto* p = pipelines(ctx);
    if (!p) return ctx.status();
    auto r = p->restart_datum(rd->pipeline, rd->datum);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) ctx.print_json(*r);
    else fmt::print("{}\n", r->id);
    return 0;
  });

  auto fc = std::make_shared<PipelineOptions>();
  s = app.add_subcommand("flush-commit",
                         "Wait until every pipeline run that reads a commit (directly or downstream) has ended");
  s->add_option("COMMIT", fc->commit, "A commit id, prefix, or branch (its head)")->required();
  s->add_option("--timeout", fc->timeout, "Give up after this many seconds")
      ->capture_default_str()
      ->type_name("SECONDS")
      ->check(CLI::NonNegativeNumber);
  s->footer(footer({"pachctl flush-commit images", "pachctl flush-commit 3f2a9c1d --json"},
                   "0 every run succeeded (one line each: RUN STATE); 3 commit not found; 5 a run did not "
                   "succeed; 6 still running at --timeout. Without a server, the runs happen in this command."));
  add_runner(s, [fc, &ctx]() -> int {
    auto* p = pipelines(ctx);
    if (!p) return ctx.status();
    return flush(*p, fc->commit, fc->timeout, ctx);
  });

  auto rn = std::make_shared<PipelineOptions>();
  s = app.add_subcommand("run-datum",
                         "Try a spec on one datum in its container, against its inputs' heads; commits nothing");
  s->add_option("-f,--file", rn->file, "The spec: a JSON file, or - for standard input")->required()->type_name("FILE");
  s->add_option("--datum", rn->datum, "Which datum: its id (prefix), or a path of one of its files (default: the first)")
      ->type_name("DATUM");
  s->add_option("-o,--output", rn->output, "Copy what it wrote under /pfs/out to this new folder (local store only)")
      ->type_name("DIR");
  s->footer(footer({"pachctl run-datum -f edges.json", "pachctl run-datum -f edges.json --datum images/a.png -o /tmp/out"},
                   "0 the datum succeeded; 2 invalid spec; 3 an input, or the datum, not found; 5 the datum "
                   "failed (its log is printed)."));
  add_runner(s, [rn, &ctx]() -> int {
    std::string text;
    if (!read_input_file(rn->file, text, ctx)) return ctx.status();
    auto* p = pipelines(ctx);
    if (!p) return ctx.status();
    pfs::DatumTrialOptions o;
    o.datum = rn->datum;
    o.output_dir = rn->output;
    auto r = p->run_datum(text, o);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) {
      ctx.print_json(*r);
    } else {
      print_datum(r->datum);
      fmt::print("Outputs:\n");
      for (const auto& f : r->outputs) fmt::print("  /pfs/out/{} ({})\n", f.path, human_size(f.size));
      fmt::print("Log:\n{}", r->logs);
      if (!r->logs.empty() && r->logs.back() != '\n') fmt::print("\n");
    }
    if (r->datum.state != pfs::DatumState::kProcessed)
      return ctx.fail(pfs::ErrorCode::kConflict, "the datum failed: " + r->datum.error);
    return 0;
  });
}

}  // namespace pachctl
