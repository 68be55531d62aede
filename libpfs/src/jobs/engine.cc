// engine.cc: LocalJobs: open_jobs(), the engine lock, recovery of runs a
// killed engine left, the queue and its workers, the records on branch
// _jobs, and the calls that read runs, logs and outputs.
#include "engine.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include <pfs/json.h>

#include "fail.h"
#include "names.h"

namespace pfs::detail::jobs {

namespace fs = std::filesystem;

namespace {

std::string record_path(const std::string& commit, const std::string& job) {
  return fmt::format("runs/{}/{}.json", commit, job);
}
std::string marker_path(const std::string& commit, const std::string& job) {
  return fmt::format("active/{}.{}", commit, job);
}

bool ended(RunState s) { return s != RunState::kQueued && s != RunState::kRunning; }

}  // namespace

LocalJobs::LocalJobs(Client& store, JobsOptions opts) : store_(store), opts_(std::move(opts)) {
  if (opts_.max_runs == 0) opts_.max_runs = 1;
  if (opts_.tries == 0) opts_.tries = 1;
}

LocalJobs::~LocalJobs() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    // Runs in progress end now: their containers die, their requests fail,
    // and each run is recorded as interrupted (runner.cc).
    for (pid_t p : live_) ::kill(p, SIGKILL);
  }
  cv_.notify_all();
  // Pipeline runs end as killed (resumed by the next engine), job runs as
  // interrupted; the threads that ran them end with them.
  if (pipelines_) pipelines_->stop();
  scheduler_.stop();
  // What was still queued is recorded as interrupted, so that nothing
  // shows as queued forever; `rerun` runs it.
  std::vector<Slot> left;
  {
    std::lock_guard lk(mu_);
    for (auto& [k, s] : slots_) left.push_back(s);
    slots_.clear();
  }
  try {
    for (auto& s : left) {
      s.info.state = RunState::kFailure;
      s.info.reason = fmt::format("interrupted: the engine stopped before the run began (run it with: pachctl rerun {})",
                                  s.info.commit);
      s.info.finished_ns = now_ns();
      finish(s.info);
    }
  } catch (...) {
    // The store is going away: the next engine marks them (recover()).
  }
}

void LocalJobs::notice(const std::string& line) {
  if (opts_.log) opts_.log(line);
}

void LocalJobs::ensure_jobs_branch() {
  if (store_.inspect_branch(kJobsBranch)) return;
  auto b = store_.create_branch(kJobsBranch, "");
  if (!b) {
    if (b.error().code == ErrorCode::kAlreadyExists) return;
    throw Fail{std::move(b).error()};
  }
  // A new branch starts from master's head: empty it, so that _jobs holds
  // only what the engine writes.
  if (!b->head.empty()) {
    for (const auto& f : unwrap(store_.list_files(Ref::branch(kJobsBranch), "")))
      unwrap(store_.delete_file(kJobsBranch, f.path));
    unwrap(store_.commit(kJobsBranch, "jobs: runs, logs and outputs of jobs (managed by pfs)"));
  }
}

void LocalJobs::start() {
  StoreInfo si = unwrap(store_.info());
  work_ = opts_.work_dir.empty() ? fs::path(si.path) / "jobs" : opts_.work_dir;
  fs::create_directories(work_);
  work_ = fs::canonical(work_);  // unpacking refuses paths through symlinks
  images_ = std::make_unique<ImageStore>(work_ / "images", opts_.image_engine);
  runtime_ = std::make_unique<Runtime>(work_, opts_.runtime);
  // Without the lock or a working runtime, jobs can still be defined and
  // runs, logs and outputs read; only running needs them (must_run()).
  lock_ = UniqueFd(::open((work_ / "engine.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock_) fail_errno(errno, "open " + (work_ / "engine.lock").string());
  if (!flock_fd(lock_.get(), true, false)) {
    disabled_ = Error{ErrorCode::kBusy,
                      fmt::format("another process runs the jobs of the store {} (a pachctl serve?); send "
                                  "the commit to it instead (pachctl --address URL ...)",
                                  si.path)};
    pipelines_ = std::make_unique<PipelineEngine>(store_, opts_, work_, *images_, *runtime_, scheduler_, disabled_);
    return;
  }
  try {
    runtime_->check();
  } catch (Fail& f) {
    disabled_ = f.error;
  }
  recover();  // (branch _jobs is made by the first run, not by a read)
  pipelines_ = std::make_unique<PipelineEngine>(store_, opts_, work_, *images_, *runtime_, scheduler_, disabled_);
  if (disabled_) return;
  scheduler_.add(source());
  scheduler_.start(opts_.max_runs);
  pipelines_->start();
}

void LocalJobs::must_run() {
  if (disabled_) throw Fail{Error{disabled_->code, "cannot run jobs: " + disabled_->message}};
}

void LocalJobs::recover() {
  if (!disabled_)
    if (std::size_t n = runtime_->remove_leftovers())
      notice(fmt::format("removed {} container(s) left by an engine that was killed", n));
  std::error_code ec;
  fs::remove_all(work_ / "runs", ec);
  auto markers = store_.list_files(Ref::branch(kJobsBranch), "active");
  if (!markers) return;  // none
  bool changed = false;
  for (const auto& m : *markers) {
    std::string name = path_base(m.path);
    auto dot = name.find('.');
    if (dot == std::string::npos) continue;
    std::string commit = name.substr(0, dot), job = name.substr(dot + 1);
    if (auto r = read_record(commit, job); r && !ended(r->state)) {
      r->state = RunState::kFailure;
      r->reason = fmt::format(
          "interrupted: the engine stopped during the run (killed or crashed); its partial output was "
          "dropped; run it again with: pachctl rerun {} {}",
          commit, job);
      r->finished_ns = now_ns();
      write_record(*r);
      notice(fmt::format("run of job {} on commit {} was interrupted; marked failed", job, commit));
    }
    (void)store_.delete_file(kJobsBranch, m.path);
    changed = true;
  }
  if (changed) unwrap(store_.commit(kJobsBranch, "jobs: runs interrupted by a stop"));
}

std::optional<RunInfo> LocalJobs::read_record(const std::string& commit, const std::string& job) {
  std::string text;
  auto sink = Sink::to_string(&text);
  auto r = store_.get_file(Ref::branch(kJobsBranch), record_path(commit, job), *sink);
  if (!r) {
    if (r.error().code == ErrorCode::kNotFound) return std::nullopt;
    throw Fail{std::move(r).error()};
  }
  auto info = parse_json<RunInfo>(text);
  if (!info)
    failf(ErrorCode::kCorruption, "the record of job {} on commit {} (branch {}, {}) is damaged: {}", job, commit,
          kJobsBranch, record_path(commit, job), info.error().message);
  return std::move(*info);
}

void LocalJobs::write_record(const RunInfo& r) {
  nlohmann::json j = r;
  auto src = Source::from_string(j.dump(2) + "\n");
  unwrap(store_.put_file(kJobsBranch, record_path(r.commit, r.job), *src));
}

void LocalJobs::finish(RunInfo r) {
  fs::path log = work_ / "runs" / fmt::format("{}.{}.{}", r.commit, r.job, r.attempt) / "log";
  if (fs::exists(log)) {
    UniqueFd fd(::open(log.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd) {
      auto src = Source::from_fd(fd.get());
      (void)store_.put_file(kJobsBranch, fmt::format("logs/{}/{}.log", r.commit, r.job), *src);
    }
  }
  write_record(r);
  (void)store_.delete_file(kJobsBranch, marker_path(r.commit, r.job));
  {
    std::lock_guard lk(commit_mu_);
    unwrap(store_.commit(kJobsBranch, fmt::format("jobs: {} on {}: {}", r.job, r.commit, run_state_name(r.state))));
  }
  std::error_code ec;
  fs::remove_all(log.parent_path(), ec);
  notice(fmt::format("job {} on commit {}: {}{}{}", r.job, r.commit.substr(0, 12), run_state_name(r.state),
                     r.reason.empty() ? "" : ": ", r.reason));
}

std::vector<RunInfo> LocalJobs::queue_runs(const CommitInfo& commit, const std::vector<FoundJob>& all,
                                           const std::set<std::string>& which) {
  ensure_jobs_branch();
  auto cycles = find_cycles(all);
  std::map<std::string, const FoundJob*> by_name;
  for (const auto& j : all) by_name[j.name] = &j;
  std::vector<RunInfo> queued, failed;
  std::map<std::string, std::vector<std::string>> deps;
  for (const auto& name : which) {
    const FoundJob& j = *by_name.at(name);
    RunInfo r;
    r.commit = commit.id;
    r.branch = commit.branch;
    r.job = name;
    r.job_version = short_hash(j.text);
    if (j.spec) r.spec = *j.spec;
    r.spec.name = name;
    if (auto prev = read_record(commit.id, name)) r.attempt = prev->attempt + 1;
    r.queued_ns = now_ns();
    r.state = RunState::kQueued;
    if (!j.spec) {
      r.state = RunState::kFailure;
      r.reason = fmt::format("job/{} is not a valid job descriptor: {}", name, j.error);
    } else if (auto c = cycles.find(name); c != cycles.end()) {
      r.state = RunState::kFailure;
      r.reason = "its input closes a cycle of jobs: " + c->second;
    } else if (Input in = parse_input(j.spec->input); in.kind == Input::Kind::kJob) {
      if (!by_name.count(in.path)) {
        r.state = RunState::kFailure;
        r.reason = fmt::format("its input job/{} is not a job of commit {}", in.path, commit.id);
      } else if (which.count(in.path)) {
        deps[name].push_back(in.path);
      } else if (auto up = read_record(commit.id, in.path); !up || up->state != RunState::kSuccess) {
        r.state = RunState::kSkipped;
        r.reason = fmt::format("job {}, whose output it reads, has not succeeded on this commit", in.path);
      }
    }
    if (r.state == RunState::kQueued) {
      auto src = Source::from_string("");
      unwrap(store_.put_file(kJobsBranch, marker_path(r.commit, r.job), *src));
      write_record(r);
      queued.push_back(r);
    } else {
      r.finished_ns = r.queued_ns;
      failed.push_back(r);
    }
  }
  {
    std::lock_guard lk(mu_);
    for (const auto& r : failed) progress_[Key{r.commit, r.job}] = r;  // what dependents see
    for (const auto& r : queued) {
      Key k{r.commit, r.job};
      slots_[k] = Slot{r, deps[r.job], false};
      progress_.erase(k);  // an earlier attempt's end
      order_.push_back(k);
    }
  }
  cv_.notify_all();
  scheduler_.wake();
  for (auto& r : failed) finish(r);
  std::vector<RunInfo> out = queued;
  out.insert(out.end(), failed.begin(), failed.end());
  std::sort(out.begin(), out.end(), [](const RunInfo& a, const RunInfo& b) { return a.job < b.job; });
  return out;
}

// The oldest queued run whose jobs of the same commit it reads have all
// ended (under mu_); `skip` says why it cannot run when one did not succeed.
std::deque<LocalJobs::Key>::iterator LocalJobs::next_ready(std::string& skip) {
  for (auto it = order_.begin(); it != order_.end(); ++it) {
    const Slot& s = slots_.at(*it);
    bool ready = true;
    skip.clear();
    for (const auto& d : s.deps) {
      Key dk{it->first, d};
      if (slots_.count(dk)) {
        ready = false;  // still queued or running
        break;
      }
      auto done = progress_.find(dk);  // its final state, kept below
      if (done == progress_.end() || done->second.state != RunState::kSuccess)
        skip = fmt::format("job {}, whose output it reads, did not succeed ({})", d,
                           done == progress_.end() ? "unknown" : std::string(run_state_name(done->second.state)));
    }
    if (ready) return it;
  }
  return order_.end();
}

RunScheduler::Source LocalJobs::source() {
  RunScheduler::Source src;
  src.peek = [this]() -> std::optional<std::int64_t> {
    std::lock_guard lk(mu_);
    std::string skip;
    auto it = stopping_ ? order_.end() : next_ready(skip);
    if (it == order_.end()) return std::nullopt;
    return slots_.at(*it).info.queued_ns;
  };
  src.take = [this]() -> std::function<void()> {
    std::lock_guard lk(mu_);
    std::string skip;
    auto it = stopping_ ? order_.end() : next_ready(skip);
    if (it == order_.end()) return {};
    Slot& s = slots_.at(*it);
    order_.erase(it);
    s.running = true;
    return [this, run = s.info, skip] { run_slot(run, skip); };
  };
  return src;
}

void LocalJobs::run_slot(RunInfo run, const std::string& skip) {
  if (!skip.empty()) {
    run.state = RunState::kSkipped;
    run.reason = skip;
    run.finished_ns = now_ns();
  } else {
    run = execute(std::move(run));
  }
  try {
    finish(run);
  } catch (Fail& f) {
    notice(fmt::format("could not record the end of job {} on commit {}: {}", run.job, run.commit, f.error.message));
  }
  {
    std::lock_guard lk(mu_);
    Key k{run.commit, run.job};
    slots_.erase(k);
    progress_[k] = run;  // what dependents and waiters look at
  }
  cv_.notify_all();
}

std::string LocalJobs::full_commit(std::string_view commit) {
  if (commit.empty()) fail(ErrorCode::kInvalidArgument, "name a commit (its id, a prefix of it, or a branch)");
  return unwrap(store_.inspect_commit(commit)).id;
}

std::optional<RunInfo> LocalJobs::current(const std::string& commit, const std::string& job) {
  {
    std::lock_guard lk(mu_);
    Key k{commit, job};
    if (auto it = slots_.find(k); it != slots_.end()) {
      RunInfo r = it->second.info;
      if (auto p = progress_.find(k); p != progress_.end()) r = p->second;
      return r;
    }
  }
  return read_record(commit, job);
}

RunInfo LocalJobs::ended_run(const std::string& commit, const std::string& job, std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  {
    std::unique_lock lk(mu_);
    cv_.wait_until(lk, deadline, [&] { return stopping_ || !slots_.count(Key{commit, job}); });
  }
  auto r = current(commit, job);
  // A run another process holds (a server, when this is a local pachctl):
  // its record says when it has ended.
  while (r && !ended(r->state) && std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lk(mu_);
      if (stopping_ || slots_.count(Key{commit, job})) break;  // ours: the wait above was for it
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    r = current(commit, job);
  }
  if (!r) {
    auto has = store_.stat_file(Ref::commit(commit), std::string(kJobDir) + "/" + job);
    if (has)
      failf(ErrorCode::kNotFound,
            "job {} has not run on commit {}: the commit was made without running its jobs (run them with: "
            "pachctl rerun {})",
            job, commit, commit);
    failf(ErrorCode::kNotFound, "commit {} has no job {} (list them with: pachctl list-job -c {})", commit, job,
          commit);
  }
  return *r;
}

Result<CommitInfo> LocalJobs::commit_and_run(std::string_view branch, std::string_view message) {
  return guard([&] {
    check_branch_name(branch);
    if (branch == kJobsBranch)
      failf(ErrorCode::kInvalidArgument, "branch {} keeps the runs of jobs; commit a data branch", kJobsBranch);
    must_run();
    CommitInfo c = unwrap(store_.commit(branch, message));
    auto found = find_jobs(store_, Ref::commit(c.id));
    std::set<std::string> all;
    for (const auto& j : found) all.insert(j.name);
    queue_runs(c, found, all);
    return c;
  });
}

Result<std::vector<RunInfo>> LocalJobs::rerun(std::string_view commit, const RerunOptions& opts) {
  return guard([&] {
    must_run();
    CommitInfo c = unwrap(store_.inspect_commit(commit));
    auto found = find_jobs(store_, Ref::commit(c.id));
    std::set<std::string> names;
    for (const auto& j : found) names.insert(j.name);
    std::set<std::string> pick;
    if (!opts.job.empty()) {
      if (!names.count(opts.job))
        failf(ErrorCode::kNotFound, "commit {} has no job {} (list them with: pachctl list-job -c {})", c.id,
              opts.job, c.id);
      // The job and every job that reads it, directly or not.
      pick.insert(opts.job);
      for (bool grew = true; grew;) {
        grew = false;
        for (const auto& j : found)
          if (j.spec && !pick.count(j.name)) {
            Input in = parse_input(j.spec->input);
            if (in.kind == Input::Kind::kJob && pick.count(in.path)) grew = pick.insert(j.name).second || grew;
          }
      }
    } else {
      pick = names;
    }
    std::set<std::string> which;
    for (const auto& name : pick) {
      auto r = current(c.id, name);
      if (r && !ended(r->state))
        failf(ErrorCode::kConflict, "job {} is {} on commit {}; wait for it (pachctl inspect-run {} {} --wait)",
              name, run_state_name(r->state), c.id, c.id, name);
      if (!r || r->state != RunState::kSuccess) which.insert(name);
    }
    if (which.empty()) return std::vector<RunInfo>{};
    return queue_runs(c, found, which);
  });
}

Result<std::vector<RunInfo>> LocalJobs::list_runs(std::string_view commit) {
  return guard([&] {
    std::vector<std::string> commits;
    if (!commit.empty()) {
      commits.push_back(full_commit(commit));
    } else {
      auto dirs = store_.list_files(Ref::branch(kJobsBranch), "runs");
      if (dirs)
        for (const auto& d : *dirs) commits.push_back(path_base(d.path));
    }
    std::vector<RunInfo> out;
    for (const auto& c : commits) {
      auto files = store_.list_files(Ref::branch(kJobsBranch), "runs/" + c);
      if (!files) continue;
      for (const auto& f : *files) {
        std::string name = path_base(f.path);
        if (name.size() < 6 || name.substr(name.size() - 5) != ".json") continue;
        if (auto r = current(c, name.substr(0, name.size() - 5))) out.push_back(std::move(*r));
      }
    }
    std::sort(out.begin(), out.end(), [](const RunInfo& a, const RunInfo& b) {
      if (a.commit != b.commit) return a.queued_ns > b.queued_ns;
      return a.job < b.job;
    });
    return out;
  });
}

Result<RunInfo> LocalJobs::inspect_run(std::string_view commit, std::string_view job) {
  return guard([&] {
    check_name(job, "job");
    return ended_run(full_commit(commit), std::string(job), std::chrono::milliseconds(0));
  });
}

Result<RunInfo> LocalJobs::wait_run(std::string_view commit, std::string_view job, std::chrono::milliseconds wait) {
  return guard([&] {
    check_name(job, "job");
    return ended_run(full_commit(commit), std::string(job), wait);
  });
}

Result<void> LocalJobs::get_logs(std::string_view commit, std::string_view job, Sink& out) {
  return guard([&] {
    check_name(job, "job");
    std::string c = full_commit(commit);
    RunInfo r = ended_run(c, std::string(job), std::chrono::milliseconds(0));
    if (!ended(r.state)) {  // running: what it wrote so far
      fs::path log = work_ / "runs" / fmt::format("{}.{}.{}", c, r.job, r.attempt) / "log";
      UniqueFd fd(::open(log.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) return;  // not started yet
      char buf[65536];
      for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) > 0;) unwrap(out.write(std::span<const char>(buf, n)));
      return;
    }
    auto g = store_.get_file(Ref::branch(kJobsBranch), fmt::format("logs/{}/{}.log", c, r.job), out);
    if (!g && g.error().code != ErrorCode::kNotFound) throw Fail{std::move(g).error()};
  });
}

namespace {

// Why an ended run has no output to read.
[[noreturn]] void no_output(const RunInfo& r) {
  failf(ErrorCode::kConflict, "job {} {} on commit {}: {} (state {}; its log: pachctl get-logs {} -c {})", r.job,
        r.state == RunState::kSkipped ? "was skipped" : "failed", r.commit, r.reason, run_state_name(r.state), r.job,
        r.commit);
}

}  // namespace

RunInfo LocalJobs::succeeded_run(const std::string& commit, const std::string& job, std::chrono::milliseconds wait) {
  RunInfo r = ended_run(commit, job, wait);
  if (!ended(r.state))
    failf(ErrorCode::kBusy, "job {} is still {} on commit {} ({} of {} datums done); ask again later", r.job,
          run_state_name(r.state), commit, r.datums_done, r.datums_total);
  if (r.state != RunState::kSuccess) no_output(r);
  return r;
}

Result<FileInfo> LocalJobs::get_output(std::string_view commit, std::string_view job, std::string_view path,
                                       Sink& out, const OutputOptions& opts) {
  return guard([&] {
    check_name(job, "job");
    std::string p = normalize_path(path);
    std::string c = full_commit(commit);
    RunInfo r = succeeded_run(c, std::string(job), opts.wait);
    std::string base = fmt::format("out/{}/{}", c, r.job);
    auto g = store_.get_file(Ref::branch(kJobsBranch), base + "/" + p, out);
    if (!g && g.error().code == ErrorCode::kNotFound)
      failf(ErrorCode::kNotFound, "the output of job {} on commit {} has no file \"{}\" (list it with: pachctl "
            "list-file --job {} -c {})", r.job, c, p, r.job, c);
    FileInfo fi = unwrap(std::move(g));
    fi.path = p;
    return fi;
  });
}

Result<std::vector<FileInfo>> LocalJobs::list_output(std::string_view commit, std::string_view job,
                                                     std::string_view dir_or_glob, const OutputOptions& opts) {
  return guard([&] {
    check_name(job, "job");
    std::string c = full_commit(commit);
    RunInfo r = succeeded_run(c, std::string(job), opts.wait);
    std::string base = fmt::format("out/{}/{}", c, r.job);
    std::string_view q = dir_or_glob;
    while (!q.empty() && q.front() == '/') q.remove_prefix(1);
    std::string rel = (q.empty() || q == ".") ? std::string() : std::string(q);
    if (!rel.empty() && !is_glob(rel)) rel = normalize_path(rel);
    ListOptions lo;
    lo.recursive = opts.recursive;
    auto l = store_.list_files(Ref::branch(kJobsBranch), rel.empty() ? base : base + "/" + rel, lo);
    if (!l) {
      if (l.error().code == ErrorCode::kNotFound && rel.empty() && r.output.files == 0)
        return std::vector<FileInfo>{};  // an empty output
      if (l.error().code == ErrorCode::kNotFound)
        failf(ErrorCode::kNotFound, "the output of job {} on commit {} has no \"{}\"", r.job, c, rel);
      throw Fail{std::move(l).error()};
    }
    for (auto& f : *l) f.path = f.path.substr(std::min(f.path.size(), base.size() + 1));
    return std::move(*l);
  });
}

}  // namespace pfs::detail::jobs

namespace pfs {

Result<std::unique_ptr<Jobs>> open_jobs(Client& store, JobsOptions options) {
  return detail::guard([&]() -> std::unique_ptr<Jobs> {
    auto j = std::make_unique<detail::jobs::LocalJobs>(store, std::move(options));
    j->start();
    return j;
  });
}

}  // namespace pfs
