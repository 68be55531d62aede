// create-job, inspect-job, list-job, delete-job, list-run, inspect-run,
// rerun, get-logs; and what commit --run, get-file --job and list-file
// --job share (wait_for_runs, print_runs).
#include <unistd.h>

#include <algorithm>
#include <thread>

#include <fmt/core.h>

#include "cli.h"

namespace pachctl {

namespace {

std::string duration(const pfs::RunInfo& r) {
  if (!r.started_ns) return "-";
  std::int64_t end = r.finished_ns ? r.finished_ns : std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                         std::chrono::system_clock::now().time_since_epoch())
                                                         .count();
  double s = static_cast<double>(end - r.started_ns) / 1e9;
  return s < 60 ? fmt::format("{:.1f}s", s) : fmt::format("{}m{:02}s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
}

std::string datums(const pfs::RunInfo& r) {
  std::string s = fmt::format("{}/{}", r.datums_done, r.datums_total);
  if (r.datums_failed) s += fmt::format(" ({} failed)", r.datums_failed);
  return s;
}

bool ended(const pfs::RunInfo& r) {
  return r.state != pfs::RunState::kQueued && r.state != pfs::RunState::kRunning;
}

void print_run(const pfs::RunInfo& r) {
  fmt::print("Commit:    {}\n", r.commit);
  fmt::print("Branch:    {}\n", r.branch);
  fmt::print("Job:       {} (version {}, attempt {})\n", r.job, r.job_version, r.attempt);
  fmt::print("State:     {}\n", pfs::run_state_name(r.state));
  if (!r.reason.empty()) fmt::print("Reason:    {}\n", r.reason);
  fmt::print("Queued:    {}\n", r.queued_ns ? pfs::format_time_utc(r.queued_ns) : "-");
  fmt::print("Started:   {}\n", r.started_ns ? pfs::format_time_utc(r.started_ns) : "-");
  fmt::print("Finished:  {}\n", r.finished_ns ? pfs::format_time_utc(r.finished_ns) : "-");
  fmt::print("Duration:  {}\n", duration(r));
  fmt::print("Datums:    {}\n", datums(r));
  if (r.state == pfs::RunState::kSuccess)
    fmt::print("Output:    {} files, {} ({} bytes)\n", r.output.files, human_size(r.output.bytes), r.output.bytes);
  fmt::print("Image:     {}\n", r.spec.image);
}

void print_job(const pfs::JobSpec& j) { fmt::print("{}", pfs::job_json(j)); }

struct JobOptions {
  std::string name, file, branch = "master", commit, read_branch;
};

struct RunOptions {
  std::string commit, job;
  double wait = -1;  // inspect-run --wait: seconds; -1: do not wait
  bool detach = false;
  // Pipelines (list-run, get-logs):
  std::string pipeline, run, datum;
  bool all_pipelines = false, follow = false;
};

int run_list_runs(const RunOptions& o, Context& ctx) {
  auto* j = ctx.jobs();
  if (!j) return ctx.status();
  auto r = j->list_runs(o.commit);
  if (!r) return ctx.fail(r.error());
  print_runs(*r, ctx);
  return 0;
}

}  // namespace

void print_runs(const std::vector<pfs::RunInfo>& runs, Context& ctx) {
  if (ctx.globals.json) {
    ctx.print_json(runs);
    return;
  }
  std::vector<std::vector<std::string>> rows{{"COMMIT", "JOB", "STATE", "DATUMS", "STARTED (UTC)", "DURATION", "REASON"}};
  for (const auto& r : runs) {
    std::string reason = r.reason.substr(0, r.reason.find('\n'));
    if (reason.size() > 80) reason = reason.substr(0, 77) + "...";
    rows.push_back({r.commit.substr(0, 12), r.job, std::string(pfs::run_state_name(r.state)), datums(r),
                    r.started_ns ? short_time(r.started_ns) : "-", duration(r), reason.empty() ? "-" : reason});
  }
  print_table(rows);
}

int wait_for_runs(pfs::Jobs& j, const std::string& commit, Context& ctx, const std::vector<std::string>& only) {
  bool tty = ::isatty(STDERR_FILENO);
  std::vector<pfs::RunInfo> runs;
  std::size_t shown = 0;
  for (;;) {
    auto r = j.list_runs(commit);
    if (!r) return ctx.fail(r.error());
    runs = std::move(*r);
    if (!only.empty())
      std::erase_if(runs, [&](const pfs::RunInfo& x) { return std::find(only.begin(), only.end(), x.job) == only.end(); });
    const pfs::RunInfo* open = nullptr;
    for (const auto& x : runs)
      if (!ended(x)) {
        open = &x;
        break;
      }
    if (tty) {  // one line, redrawn: "upper running 3/10 · count queued"
      std::string line;
      for (const auto& x : runs) {
        if (!line.empty()) line += "  ·  ";
        line += fmt::format("{} {}", x.job, pfs::run_state_name(x.state));
        if (x.state == pfs::RunState::kRunning) line += " " + datums(x);
      }
      if (line.size() > 150) line = line.substr(0, 147) + "...";
      fmt::print(stderr, "\r\033[K  {}", line);
      shown = line.size();
    }
    if (!open) break;
    // Woken when that run ends, or after a moment to redraw the progress.
    auto w = j.wait_run(commit, open->job, std::chrono::milliseconds(tty ? 250 : 25000));
    if (!w) return ctx.fail(w.error());
  }
  if (tty && shown) fmt::print(stderr, "\r\033[K");
  if (!ctx.globals.json) {
    // stdout has the commit id; the runs go to stderr so that
    // C=$(pachctl commit --run) still captures the id alone.
    for (const auto& r : runs)
      fmt::print(stderr, "{} {}{}{}\n", r.job, pfs::run_state_name(r.state), r.reason.empty() ? "" : ": ",
                 r.reason.substr(0, r.reason.find('\n')));
  }
  for (const auto& r : runs)
    if (r.state != pfs::RunState::kSuccess) {
      ctx.fail(pfs::ErrorCode::kConflict,
               fmt::format("{} of the commit's runs did not succeed (see pachctl list-run -c {}, pachctl get-logs "
                           "JOB -c {})",
                           std::count_if(runs.begin(), runs.end(),
                                         [](const pfs::RunInfo& x) { return x.state != pfs::RunState::kSuccess; }),
                           commit.substr(0, 12), commit.substr(0, 12)));
      return ctx.status();
    }
  return 0;
}

void setup_job_commands(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<JobOptions>();
  auto* s = app.add_subcommand("create-job", "Store a job (a descriptor in JSON) as job/NAME of a branch");
  s->add_option("NAME", o->name, "The job's name")->required();
  s->add_option("FILE", o->file, "The descriptor: a JSON file, or - for standard input")->required();
  s->add_option("-b,--branch", o->branch, "The branch")->capture_default_str()->type_name("BRANCH");
  s->footer(footer({"pachctl create-job upper upper.json", "pachctl create-job -b dev count - < count.json"},
                   "0 success; 2 the descriptor is invalid (the message names the field) or would close a "
                   "cycle; 3 branch or FILE not found."));
  add_runner(s, [o, &ctx]() -> int {
    std::string text;
    if (!read_input_file(o->file, text, ctx)) return ctx.status();
    auto* j = ctx.jobs();
    if (!j) return ctx.status();
    auto r = j->create_job(o->branch, o->name, text);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) ctx.print_json(*r);
    return 0;
  });

  auto io = std::make_shared<JobOptions>();
  s = app.add_subcommand("inspect-job", "Print a job's descriptor");
  s->add_option("NAME", io->name, "The job")->required();
  auto* c = s->add_option("-c,--commit", io->commit, "As of this commit")->type_name("COMMIT");
  s->add_option("-b,--branch", io->read_branch, "As on this branch (default: master)")->type_name("BRANCH")->excludes(c);
  s->footer(footer({"pachctl inspect-job upper", "pachctl inspect-job -c 3f2a9c1d upper"},
                   "0 success; 2 invalid name, or the stored file is not a valid descriptor; 3 job, commit or "
                   "branch not found."));
  add_runner(s, [io, &ctx]() -> int {
    auto* j = ctx.jobs();
    if (!j) return ctx.status();
    auto r = j->inspect_job(read_ref(io->commit, io->read_branch), io->name);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) ctx.print_json(*r);
    else print_job(*r);
    return 0;
  });

  auto lo = std::make_shared<JobOptions>();
  s = app.add_subcommand("list-job", "List the jobs of a branch or commit");
  c = s->add_option("-c,--commit", lo->commit, "Of this commit")->type_name("COMMIT");
  s->add_option("-b,--branch", lo->read_branch, "Of this branch (default: master)")->type_name("BRANCH")->excludes(c);
  s->footer(footer({"pachctl list-job", "pachctl list-job -c 3f2a9c1d --json"}, "0 success; 3 commit or branch not found."));
  add_runner(s, [lo, &ctx]() -> int {
    auto* j = ctx.jobs();
    if (!j) return ctx.status();
    auto r = j->list_jobs(read_ref(lo->commit, lo->read_branch));
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) {
      ctx.print_json(*r);
      return 0;
    }
    std::vector<std::vector<std::string>> rows{{"JOB", "TYPE", "INPUT", "IMAGE", "COMMAND"}};
    for (const auto& x : *r) {
      std::string cmd;
      for (const auto& w : x.command) cmd += (cmd.empty() ? "" : " ") + w;
      rows.push_back({x.name, x.type == pfs::JobType::kMap ? "map" : "reduce", x.input, x.image, cmd});
    }
    print_table(rows);
    return 0;
  });

  auto dl = std::make_shared<JobOptions>();
  s = app.add_subcommand("delete-job", "Delete job/NAME from a branch (commits that ran it keep it)");
  s->add_option("NAME", dl->name, "The job")->required();
  s->add_option("-b,--branch", dl->branch, "The branch")->capture_default_str()->type_name("BRANCH");
  s->footer(footer({"pachctl delete-job upper"}, "0 success; 2 invalid name; 3 job or branch not found."));
  add_runner(s, [dl, &ctx]() -> int {
    auto* j = ctx.jobs();
    if (!j) return ctx.status();
    auto r = j->delete_job(dl->branch, dl->name);
    if (!r) return ctx.fail(r.error());
    return 0;
  });

  auto lr = std::make_shared<RunOptions>();
  s = app.add_subcommand("list-run", "List runs (newest first): of jobs (of one commit, or all), or of pipelines");
  s->add_option("-c,--commit", lr->commit, "Only the runs on (or, for pipelines, reading) this commit")
      ->type_name("COMMIT");
  auto* lp = s->add_option("-p,--pipeline", lr->pipeline, "The runs of this pipeline")->type_name("PIPELINE");
  s->add_flag("--pipelines", lr->all_pipelines, "The runs of every pipeline")->excludes(lp);
  s->footer(footer({"pachctl list-run", "pachctl list-run -c 3f2a9c1d", "pachctl list-run -p edges",
                    "pachctl list-run --pipelines -c images --json"},
                   "0 success; 3 commit or pipeline not found."));
  add_runner(s, [lr, &ctx] {
    if (!lr->pipeline.empty() || lr->all_pipelines) return list_pipeline_runs(lr->pipeline, lr->commit, ctx);
    return run_list_runs(*lr, ctx);
  });

  auto ir = std::make_shared<RunOptions>();
  s = app.add_subcommand("inspect-run", "Show one run (of a pipeline, or of a job on a commit): state, times, datums");
  s->add_option("RUN_OR_COMMIT", ir->commit, "A pipeline run (PIPELINE@N), or the commit a job ran on")->required();
  s->add_option("JOB", ir->job, "The job (for a job's run)");
  s->add_option("-w,--wait", ir->wait, "Wait up to this many seconds for the run to end")
      ->type_name("SECONDS")
      ->check(CLI::NonNegativeNumber);
  s->footer(footer({"pachctl inspect-run edges@3", "pachctl inspect-run 3f2a9c1d upper",
                    "pachctl inspect-run master count --wait 600"},
                   "0 success (whatever the run's state); 2 neither PIPELINE@N nor COMMIT JOB; 3 commit, "
                   "pipeline or run not found."));
  add_runner(s, [ir, &ctx]() -> int {
    if (ir->job.empty()) {
      if (ir->commit.find('@') == std::string::npos)
        return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                        fmt::format("name a pipeline run (PIPELINE@N), or a commit and a job: pachctl inspect-run {} JOB",
                                    ir->commit));
      return inspect_pipeline_run(ir->commit, ir->wait, ctx);
    }
    auto* j = ctx.jobs();
    if (!j) return ctx.status();
    auto r = ir->wait >= 0 ? j->wait_run(ir->commit, ir->job,
                                         std::chrono::milliseconds(static_cast<std::int64_t>(ir->wait * 1000)))
                           : j->inspect_run(ir->commit, ir->job);
    if (!r) return ctx.fail(r.error());
    if (ctx.globals.json) ctx.print_json(*r);
    else print_run(*r);
    return 0;
  });

  auto rr = std::make_shared<RunOptions>();
  s = app.add_subcommand("rerun", "Run again the runs of a commit that did not succeed (or run a commit's jobs)");
  s->add_option("COMMIT", rr->commit, "The commit")->required();
  s->add_option("JOB", rr->job, "Only this job (and the jobs that read it)");
  s->add_flag("-d,--detach", rr->detach, "Do not wait for the runs (with --address only)");
  s->footer(footer({"pachctl rerun 3f2a9c1d", "pachctl rerun 3f2a9c1d upper"},
                   "0 every run succeeded (or none needed running); 3 commit or job not found; 5 a run is "
                   "queued or running, or a run did not succeed; 6 another process runs this store's jobs "
                   "(use --address); 10 jobs cannot run here (not root, or runc missing)."));
  add_runner(s, [rr, &ctx]() -> int {
    if (rr->detach && ctx.address().empty())
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      "--detach needs a server (--address): a local run ends with this process");
    auto* j = ctx.jobs();
    if (!j) return ctx.status();
    pfs::RerunOptions opts;
    opts.job = rr->job;
    auto r = j->rerun(rr->commit, opts);
    if (!r) return ctx.fail(r.error());
    if (r->empty()) {
      if (!ctx.globals.json) fmt::print(stderr, "nothing to run: every run of the commit succeeded\n");
      else ctx.print_json(*r);
      return 0;
    }
    if (rr->detach) {
      print_runs(*r, ctx);
      return 0;
    }
    std::string commit = r->front().commit;
    std::vector<std::string> jobs;
    for (const auto& x : *r) jobs.push_back(x.job);
    int st = wait_for_runs(*j, commit, ctx, jobs);
    if (ctx.globals.json) {
      auto all = j->list_runs(commit);
      if (all) ctx.print_json(*all);
    }
    return st;
  });

  auto gl = std::make_shared<RunOptions>();
  s = app.add_subcommand("get-logs", "Print what containers wrote (stdout and stderr): of a job's run, or of a "
                                     "pipeline's runs, one run, or one datum");
  s->add_option("JOB", gl->job, "The job (with -c)");
  s->add_option("-c,--commit", gl->commit, "The commit the job ran on")->type_name("COMMIT");
  s->add_option("-p,--pipeline", gl->pipeline, "Every run of this pipeline")->type_name("PIPELINE");
  s->add_option("--run", gl->run, "One pipeline run (PIPELINE@N)")->type_name("RUN");
  s->add_option("--datum", gl->datum, "One datum (id or prefix; with -p or --run)")->type_name("DATUM");
  s->add_flag("-f,--follow", gl->follow, "Keep printing as the run goes on, until it ends");
  s->footer(footer({"pachctl get-logs upper -c 3f2a9c1d", "pachctl get-logs -p edges", "pachctl get-logs --run edges@3 -f",
                    "pachctl get-logs --run edges@3 --datum 9f2c"},
                   "0 success; 2 neither a job and commit nor a pipeline or run named; 3 commit, job, pipeline "
                   "or run not found."));
  add_runner(s, [gl, &ctx]() -> int {
    if (!gl->pipeline.empty() || !gl->run.empty()) {
      if (!gl->job.empty())
        return ctx.fail(pfs::ErrorCode::kInvalidArgument, "name a job (with -c) or a pipeline (-p/--run), not both");
      pfs::LogFilter f;
      f.pipeline = gl->pipeline;
      f.run = gl->run;
      f.datum = gl->datum;
      f.follow = gl->follow;
      return pipeline_logs(f, ctx);
    }
    if (gl->job.empty() || gl->commit.empty())
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      "say whose logs: a job and its commit (get-logs JOB -c COMMIT), a pipeline (-p NAME) or a "
                      "run (--run NAME@N)");
    auto* j = ctx.jobs();
    if (!j) return ctx.status();
    auto sink = pfs::Sink::to_fd(1);
    auto r = j->get_logs(gl->commit, gl->job, *sink);
    if (!r) return ctx.fail(r.error());
    return 0;
  });
}

}  // namespace pachctl
