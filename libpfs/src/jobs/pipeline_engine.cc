// pipeline_engine.cc: PipelineEngine: the trigger (commit events ->
// queued runs), catch-up and the queue (one run per pipeline at a time;
// the threads are the RunScheduler shared with the jobs); creating, changing, stopping and
// deleting pipelines. What it shows of runs: pipeline_reads.cc.
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <pfs/json.h>

#include "fail.h"
#include "names.h"
#include "pipeline_engine.h"
#include "spec.h"

namespace pfs::detail::jobs {

namespace fs = std::filesystem;

PipelineEngine::PipelineEngine(Client& store, const JobsOptions& opts, fs::path work, ImageStore& images,
                               Runtime& runtime, RunScheduler& scheduler, std::optional<Error> disabled)
    : store_(store), opts_(opts), work_(std::move(work)), images_(images), runtime_(runtime),
      scheduler_(scheduler), disabled_(std::move(disabled)) {
  scheduler_.add(source());
}

PipelineEngine::~PipelineEngine() { stop(); }

void PipelineEngine::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    // Runs in progress end now, as killed: their finished datums stay in
    // the cache and the next engine resumes them.
    for (auto& [id, pids] : live_pids_)
      for (pid_t p : pids) ::kill(p, SIGKILL);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  // A run on a scheduler thread ends as killed; wait for its record.
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return running_.empty(); });
}

void PipelineEngine::notice(const std::string& line) {
  if (opts_.log) opts_.log(line);
}

void PipelineEngine::must_run() {
  if (disabled_) throw Fail{Error{disabled_->code, "cannot run pipelines: " + disabled_->message}};
}

std::pair<std::string, std::uint64_t> PipelineEngine::parse_run_id(std::string_view id) {
  auto at = id.rfind('@');
  std::uint64_t n = 0;
  if (at == std::string_view::npos || at == 0 || at + 1 == id.size())
    failf(ErrorCode::kInvalidArgument, "\"{}\" is not a run id: write <pipeline>@<number> (list them with: pachctl "
          "list-run)", id);
  for (char c : id.substr(at + 1)) {
    if (c < '0' || c > '9' || n > (1ull << 50))
      failf(ErrorCode::kInvalidArgument, "\"{}\" is not a run id: write <pipeline>@<number>", id);
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  std::string p(id.substr(0, at));
  check_branch_name(p);
  return {p, n};
}

PipelineMeta PipelineEngine::need(std::string_view name) {
  check_branch_name(name);
  auto m = load_meta(std::string(name));
  if (!m) failf(ErrorCode::kNotFound, "no pipeline {} (list them with: pachctl list-pipeline)", name);
  return std::move(*m);
}

std::vector<std::string> PipelineEngine::readers_of(const std::string& b) {
  std::vector<std::string> out;
  for (const auto& name : pipeline_names())
    if (auto m = load_meta(name)) {
      auto in = pipeline_inputs(m->info.spec);
      if (std::find(in.begin(), in.end(), b) != in.end()) out.push_back(name);
    }
  return out;
}

// ---- start, trigger, scheduler ----------------------------------------------

void PipelineEngine::discard(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  fs::create_directories(work_ / "trash", ec);
  fs::rename(dir, work_ / "trash" / random_hex(8), ec);
  if (ec) {
    fs::remove_all(dir, ec);
    return;
  }
  {
    std::lock_guard lk(mu_);
    trash_ = true;
  }
  cv_.notify_all();
}

void PipelineEngine::janitor() {
  // A server leaves what a stop interrupts to its next start (a SIGTERM
  // must not wait for 100,000 folders); a local pachctl, whose engine
  // lives as long as one command, deletes all before it exits, so that it
  // leaves nothing behind and its next command does not pay for it.
  const bool finish = !opts_.pipelines_on_commit;
  for (;;) {
    bool last = false;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || trash_; });
      if (stopping_ && !finish) return;
      last = stopping_;
      trash_ = false;
    }
    // Entry by entry, so that a stop need not wait for a large folder.
    std::error_code ec;
    for (const auto& top : fs::directory_iterator(work_ / "trash", ec)) {
      std::error_code ec2;
      for (const auto& e : fs::directory_iterator(top.path(), ec2)) {
        if (!finish) {
          std::lock_guard lk(mu_);
          if (stopping_) return;
        }
        fs::remove_all(e.path(), ec2);
      }
      fs::remove_all(top.path(), ec2);
    }
    if (last) return;
  }
}

void PipelineEngine::start() {
  if (disabled_ || !opts_.pipelines_on_commit) return;
  start_threads();
}

void PipelineEngine::start_threads() {
  {
    std::lock_guard lk(mu_);
    if (started_ || disabled_) return;
    started_ = true;
  }
  fs::create_directories(work_ / "pipelines");
  fs::create_directories(work_ / "trash");
  {
    std::lock_guard lk(mu_);
    trash_ = true;  // what a stopped engine left
  }
  threads_.emplace_back([this] { janitor(); });
  // Where to resume the commit events from: now, before catching up, so
  // that nothing committed from here on is missed (a commit seen twice is
  // queued once: queue_run checks).
  WaitOptions wo;
  wo.timeout_ms = 0;
  std::string cursor = unwrap(store_.wait_commits(wo)).cursor;
  for (const auto& name : pipeline_names()) {
    try {
      catch_up(name);
    } catch (Fail& f) {
      notice(fmt::format("pipeline {}: cannot resume: {}", name, f.error.message));
    }
  }
  threads_.emplace_back([this, cursor] {
    std::string c = cursor;
    for (;;) {
      {
        std::lock_guard lk(mu_);
        if (stopping_) return;
      }
      WaitOptions w;
      w.since = c;
      w.timeout_ms = 5000;
      w.cancelled = [this] {
        std::lock_guard lk(mu_);
        return stopping_;
      };
      auto ev = store_.wait_commits(w);
      if (!ev) {
        notice("pipelines: waiting for commits failed: " + ev.error().message);
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      c = ev->cursor;
      bool records_changed = false;
      // Events come oldest first per branch: one run per commit, in order.
      for (const auto& e : ev->events) {
        if (e.branch == kPipelinesBranch) records_changed = true;
        if (e.branch.empty() || e.branch[0] == '_') continue;
        for (const auto& name : readers_of(e.branch)) {
          try {
            auto m = load_meta(name);
            if (!m || m->info.stopped) continue;
            queue_run(*m, fmt::format("{}@{}", e.branch, e.commit.id), {{e.branch, e.commit.id}});
          } catch (Fail& f) {
            notice(fmt::format("pipeline {}: cannot queue a run for a commit of {}: {}", name, e.branch,
                               f.error.message));
          }
        }
      }
      // Pipelines created, changed or started by another process (a local
      // pachctl next to a server): run what they now need.
      if (records_changed)
        for (const auto& name : pipeline_names()) try {
            catch_up(name);
          } catch (Fail& f) {
            notice(fmt::format("pipeline {}: {}", name, f.error.message));
          }
    }
  });
  scheduler_.wake();
}

// Requeues the runs a stopped or killed engine left (the newest runs of a
// pipeline that have not ended), then queues a run when an input's head
// is not what the newest run read.
void PipelineEngine::catch_up(const std::string& name) {
  auto m = load_meta(name);
  if (!m || m->info.stopped) return;
  {
    // Under records_mu_: queue_run records a run and queues it under it,
    // so a run recorded but not yet queued is never seen here.
    std::lock_guard rl(records_mu_);
    std::vector<PipelineRun> open;
    for (std::uint64_t n = m->next_run; n-- > 1;) {
      auto r = read_run(name, n);
      if (!r) continue;
      if (ended(r->state) && r->state != PipelineRunState::kKilled) break;
      open.push_back(*r);
    }
    std::reverse(open.begin(), open.end());
    std::lock_guard lk(mu_);
    for (auto& r : open) {
      bool held = false;
      for (const auto& q : queue_) held |= q.id == r.id;
      if (auto it = running_.find(name); it != running_.end()) held |= it->second.id == r.id;
      if (held) continue;
      if (r.state != PipelineRunState::kQueued)
        r.reason = "resumed: the engine or the pipeline stopped during the run; finished datums are reused";
      r.state = PipelineRunState::kQueued;
      queue_.push_back(r);
    }
  }
  cv_.notify_all();
  scheduler_.wake();
  // The newest inputs.
  std::map<std::string, std::string> heads;
  for (const auto& b : pipeline_inputs(m->info.spec)) {
    auto bi = store_.inspect_branch(b);
    if (bi && !bi->head.empty()) heads[b] = bi->head;
  }
  // The newest run that read inputs (an unrunnable record read none: it
  // carries its upstream's provenance).
  std::optional<PipelineRun> newest;
  for (std::uint64_t n = m->next_run; n-- > 1 && !newest;)
    if (auto r = read_run(name, n); r && r->state != PipelineRunState::kUnrunnable) newest = std::move(r);
  bool same = newest.has_value();
  if (newest)
    for (const auto& [b, c] : heads) {
      bool found = false;
      for (const auto& p : newest->provenance) found |= p.branch == b && p.commit == c;
      same &= found;
    }
  if (!same && !heads.empty()) queue_run(*m, "catch-up: inputs changed while no engine ran");
}

PipelineRun PipelineEngine::queue_run(PipelineMeta& m, const std::string& trigger,
                                      const std::map<std::string, std::string>& fixed, bool force) {
  ensure_records_branch();
  const std::string& name = m.info.spec.name;
  PipelineRun r;
  r.pipeline = name;
  r.spec_version = m.info.version;
  r.trigger = trigger;
  r.queued_ns = now_ns();
  for (const auto& b : pipeline_inputs(m.info.spec)) {
    std::string c;
    if (auto f = fixed.find(b); f != fixed.end()) {
      c = f->second;
    } else {
      auto bi = store_.inspect_branch(b);
      if (bi) c = bi->head;
    }
    r.provenance.push_back({b, c});
  }
  std::unique_lock lk(mu_);
  // The same spec on the same input commits queued (or running) already:
  // once is enough (a commit event and a catch-up can both ask).
  auto same = [&](const PipelineRun& o) {
    return o.pipeline == name && o.provenance == r.provenance && o.spec_version == r.spec_version;
  };
  if (!force) {
    for (const auto& q : queue_)
      if (same(q)) return q;
    if (auto it = running_.find(name); it != running_.end() && same(it->second)) return it->second;
  }
  lk.unlock();
  {
    // Numbers are taken, and the run recorded and queued, under
    // records_mu_ (catch_up relies on it); mu_ nests inside it.
    std::lock_guard rl(records_mu_);
    auto fresh = load_meta(name);
    if (!fresh) failf(ErrorCode::kNotFound, "pipeline {} was deleted", name);
    // A commit event for a commit a run already read (a catch-up, or a
    // trigger that lagged behind, got there first): one run per commit.
    if (!force && !fixed.empty())
      for (std::uint64_t n = fresh->next_run, seen = 0; n-- > 1 && seen < 64; seen++) {
        auto old = read_run(name, n);
        if (!old || old->state == PipelineRunState::kUnrunnable || old->spec_version != r.spec_version) continue;
        bool covers = true;
        for (const auto& [b, c] : fixed)
          covers &= std::find(old->provenance.begin(), old->provenance.end(), ProvenanceEntry{b, c}) !=
                    old->provenance.end();
        if (covers) return *old;
      }
    r.number = fresh->next_run++;
    r.id = run_id(name, r.number);
    fresh->info.last_run = r.id;
    fresh->info.last_state = "queued";
    save_meta(*fresh);
    m = *fresh;
    write_run(r);
    std::lock_guard lk2(mu_);
    queue_.push_back(r);
  }
  cv_.notify_all();
  scheduler_.wake();
  return r;
}

RunScheduler::Source PipelineEngine::source() {
  // The oldest queued run of a pipeline that has none running (under mu_).
  auto next = [this] {
    if (stopping_ || !started_) return queue_.end();
    return std::find_if(queue_.begin(), queue_.end(), [&](const PipelineRun& q) { return !running_.count(q.pipeline); });
  };
  RunScheduler::Source src;
  src.peek = [this, next]() -> std::optional<std::int64_t> {
    std::lock_guard lk(mu_);
    auto it = next();
    if (it == queue_.end()) return std::nullopt;
    return it->queued_ns;
  };
  src.take = [this, next]() -> std::function<void()> {
    std::lock_guard lk(mu_);
    auto it = next();
    if (it == queue_.end()) return {};
    PipelineRun run = *it;
    queue_.erase(it);
    run.state = PipelineRunState::kRunning;
    run.started_ns = now_ns();
    running_[run.pipeline] = run;
    return [this, run] { run_one(run); };
  };
  return src;
}

void PipelineEngine::run_one(const PipelineRun& run) {
  PipelineRun done;
  try {
    done = execute(run);
  } catch (Fail& f) {
    done = run;
    done.state = PipelineRunState::kFailure;
    done.reason = f.error.message;
  } catch (std::exception& e) {
    done = run;
    done.state = PipelineRunState::kFailure;
    done.reason = std::string("internal error: ") + e.what();
  }
  if (done.finished_ns == 0) done.finished_ns = now_ns();
  try {
    {
      std::lock_guard rl(records_mu_);
      write_run(done);
      if (auto m = load_meta(done.pipeline)) {
        m->info.last_run = done.id;
        m->info.last_state = std::string(pipeline_run_state_name(done.state));
        if (done.state == PipelineRunState::kSuccess) {
          m->last_success = done.number;
          m->forced.clear();
          std::lock_guard lk(mu_);
          m->last_success_input = success_input_[done.id];
          success_input_.erase(done.id);
        }
        save_meta(*m);
      }
    }
    if (done.state == PipelineRunState::kFailure) mark_downstream_unrunnable(done);
    commit_records(fmt::format("{}: {}", done.id, pipeline_run_state_name(done.state)));
  } catch (Fail& f) {
    notice(fmt::format("could not record the end of run {}: {}", done.id, f.error.message));
  }
  notice(fmt::format("run {}: {}{}{}", done.id, pipeline_run_state_name(done.state), done.reason.empty() ? "" : ": ",
                     done.reason));
  {
    std::lock_guard lk(mu_);
    running_.erase(done.pipeline);
    live_datums_.erase(done.id);
    live_pids_.erase(done.id);
    stop_requested_.erase(done.pipeline);
  }
  cv_.notify_all();
}

// A failed run leaves the pipelines that read its output with nothing to
// run on: each gets a run record saying so, carrying the failed run's
// provenance, so that flush-commit reports it instead of waiting.
void PipelineEngine::mark_downstream_unrunnable(const PipelineRun& failed) {
  std::set<std::string> seen;
  std::deque<std::pair<std::string, std::string>> todo = {{failed.pipeline, failed.id}};
  while (!todo.empty()) {
    auto [branch, because] = todo.front();
    todo.pop_front();
    for (const auto& name : readers_of(branch)) {
      if (!seen.insert(name).second) continue;
      std::lock_guard rl(records_mu_);
      auto m = load_meta(name);
      if (!m) continue;
      PipelineRun r;
      r.pipeline = name;
      r.number = m->next_run++;
      r.id = run_id(name, r.number);
      r.spec_version = m->info.version;
      r.state = PipelineRunState::kUnrunnable;
      r.reason = fmt::format("upstream run {} did not succeed", because);
      r.trigger = failed.trigger;
      r.provenance = failed.provenance;
      r.queued_ns = r.finished_ns = now_ns();
      m->info.last_run = r.id;
      m->info.last_state = "unrunnable";
      save_meta(*m);
      write_run(r);
      todo.push_back({name, r.id});
    }
  }
}

// ---- definitions -------------------------------------------------------------

// The pipelines downstream of branch `b` (reading it, directly or not).
std::set<std::string> downstream(const std::map<std::string, std::vector<std::string>>& inputs, const std::string& b) {
  std::set<std::string> out;
  std::deque<std::string> todo = {b};
  while (!todo.empty()) {
    std::string x = todo.front();
    todo.pop_front();
    for (const auto& [p, in] : inputs)
      if (std::find(in.begin(), in.end(), x) != in.end() && out.insert(p).second) todo.push_back(p);
  }
  return out;
}


Result<PipelineInfo> PipelineEngine::create_pipeline(std::string_view json_text) {
  return guard([&] {
    PipelineSpec spec = unwrap(parse_pipeline(json_text));
    const std::string& name = spec.name;
    if (load_meta(name))
      failf(ErrorCode::kAlreadyExists, "pipeline {} exists (change it with: pachctl update-pipeline -f FILE)", name);
    std::map<std::string, std::vector<std::string>> inputs;
    for (const auto& p : pipeline_names())
      if (auto m = load_meta(p)) inputs[p] = pipeline_inputs(m->info.spec);
    for (const auto& b : pipeline_inputs(spec)) {
      auto bi = store_.inspect_branch(b);
      if (!bi && bi.error().code == ErrorCode::kNotFound)
        failf(ErrorCode::kNotFound, "pipeline {} reads branch {}, which does not exist (create it with: pachctl "
              "branch {}, or create the pipeline that writes it first)", name, b, b);
      unwrap(std::move(bi));
    }
    // Its output branch: made now (empty), so that pipelines reading it
    // can be created before its first run, as Pachyderm makes the output repo.
    auto out = store_.inspect_branch(name);
    if (out) {
      auto head = out->head.empty() ? std::optional<CommitInfo>() : std::optional(unwrap(store_.inspect_commit(out->head)));
      // Ours: empty (as create made it), or holding outputs of an earlier
      // pipeline of this name.
      bool ours = !head || head->message.rfind(name + "@", 0) == 0 || out->stats.files == 0;
      if (!ours)
        failf(ErrorCode::kAlreadyExists, "branch {} exists and holds data a pipeline did not write; a pipeline "
              "commits its output to the branch of its name: choose another name, or delete the branch", name);
    } else if (out.error().code == ErrorCode::kNotFound) {
      unwrap(store_.create_branch(name, ""));
      for (const auto& f : unwrap(store_.list_files(Ref::branch(name), "")))
        unwrap(store_.delete_file(name, f.path));
    } else {
      unwrap(std::move(out));
    }
    // A cycle: one of its inputs is downstream of it.
    auto down = downstream(inputs, name);
    for (const auto& b : pipeline_inputs(spec))
      if (down.count(b))
        failf(ErrorCode::kInvalidArgument, "pipeline {} would close a cycle: it reads {}, which is computed from "
              "its own output", name, b);
    ensure_records_branch();
    PipelineMeta m;
    m.info.spec = spec;
    m.info.spec_json = pipeline_json(spec);
    m.info.version = short_hash(m.info.spec_json);
    m.info.created_ns = m.info.updated_ns = now_ns();
    {
      std::lock_guard rl(records_mu_);
      save_meta(m);
    }
    fs::remove_all(work_ / "pipelines" / name);  // a cache of an earlier pipeline of that name
    // Its first run is recorded with the spec, in one commit of _pipelines.
    queue_run(m, "create-pipeline");
    commit_records(fmt::format("create pipeline {}", name));
    return m.info;
  });
}

Result<PipelineInfo> PipelineEngine::update_pipeline(std::string_view json_text, bool reprocess) {
  return guard([&] {
    PipelineSpec spec = unwrap(parse_pipeline(json_text));
    PipelineMeta m = need(spec.name);
    std::map<std::string, std::vector<std::string>> inputs;
    for (const auto& p : pipeline_names())
      if (p != spec.name)
        if (auto o = load_meta(p)) inputs[p] = pipeline_inputs(o->info.spec);
    for (const auto& b : pipeline_inputs(spec)) {
      auto bi = store_.inspect_branch(b);
      if (!bi && bi.error().code == ErrorCode::kNotFound)
        failf(ErrorCode::kNotFound, "pipeline {} reads branch {}, which does not exist", spec.name, b);
      unwrap(std::move(bi));
    }
    auto down = downstream(inputs, spec.name);
    for (const auto& b : pipeline_inputs(spec))
      if (down.count(b))
        failf(ErrorCode::kInvalidArgument, "pipeline {} would close a cycle: it reads {}, which is computed from "
              "its own output", spec.name, b);
    {
      std::lock_guard rl(records_mu_);
      m = need(spec.name);
      m.info.spec = spec;
      m.info.spec_json = pipeline_json(spec);
      m.info.version = short_hash(m.info.spec_json);
      m.info.spec_number++;
      m.info.updated_ns = now_ns();
      if (reprocess) m.salt++;
      save_meta(m);
    }
    if (!m.info.stopped) queue_run(m, "update-pipeline");
    commit_records(fmt::format("update pipeline {} (spec {}{})", spec.name, m.info.spec_number,
                               reprocess ? ", reprocess" : ""));
    return m.info;
  });
}

Result<PipelineInfo> PipelineEngine::inspect_pipeline(std::string_view name) {
  return guard([&] { return need(name).info; });
}

Result<std::vector<PipelineInfo>> PipelineEngine::list_pipelines() {
  return guard([&] {
    std::vector<PipelineInfo> out;
    for (const auto& n : pipeline_names())
      if (auto m = load_meta(n)) out.push_back(m->info);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.spec.name < b.spec.name; });
    return out;
  });
}

Result<void> PipelineEngine::delete_pipeline(std::string_view name) {
  return guard([&] {
    PipelineMeta m = need(name);
    std::string n(name);
    for (const auto& reader : readers_of(n))
      failf(ErrorCode::kConflict, "pipeline {} reads the output of {}: delete it first", reader, n);
    {
      std::unique_lock lk(mu_);
      std::erase_if(queue_, [&](const PipelineRun& r) { return r.pipeline == n; });
      if (running_.count(n)) {
        stop_requested_.insert(n);
        for (pid_t p : live_pids_[running_[n].id]) ::kill(p, SIGKILL);
        cv_.notify_all();
        cv_.wait(lk, [&] { return !running_.count(n); });
      }
    }
    {
      std::lock_guard rl(records_mu_);
      for (const char* dir : {"pipelines", "runs", "datums", "logs"}) {
        auto d = store_.delete_file(kPipelinesBranch, fmt::format("{}/{}", dir, n));
        if (!d && d.error().code != ErrorCode::kNotFound) throw Fail{std::move(d).error()};
      }
    }
    std::error_code ec;
    fs::remove_all(work_ / "pipelines" / n, ec);
    commit_records(fmt::format("delete pipeline {}", n));
  });
}

Result<PipelineInfo> PipelineEngine::stop_pipeline(std::string_view name) {
  return guard([&] {
    PipelineMeta m = need(name);
    std::string n(name);
    {
      std::lock_guard rl(records_mu_);
      m = need(name);
      m.info.stopped = true;
      save_meta(m);
    }
    {
      std::unique_lock lk(mu_);
      // Queued runs stay recorded as killed: start resumes them.
      std::vector<PipelineRun> dropped;
      for (auto it = queue_.begin(); it != queue_.end();)
        if (it->pipeline == n) {
          dropped.push_back(*it);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      if (running_.count(n)) {
        stop_requested_.insert(n);
        for (pid_t p : live_pids_[running_[n].id]) ::kill(p, SIGKILL);
        cv_.notify_all();
        cv_.wait(lk, [&] { return !running_.count(n); });
      }
      lk.unlock();
      std::lock_guard rl(records_mu_);
      for (auto& r : dropped) {
        r.state = PipelineRunState::kKilled;
        r.reason = "the pipeline was stopped before the run began; start-pipeline resumes it";
        write_run(r);
      }
    }
    commit_records(fmt::format("stop pipeline {}", n));
    return need(name).info;
  });
}

Result<PipelineInfo> PipelineEngine::start_pipeline(std::string_view name) {
  return guard([&] {
    PipelineMeta m = need(name);
    {
      std::lock_guard rl(records_mu_);
      m = need(name);
      m.info.stopped = false;
      save_meta(m);
    }
    commit_records(fmt::format("start pipeline {}", m.info.spec.name));
    if (!disabled_) catch_up(m.info.spec.name);
    return need(name).info;
  });
}

}  // namespace pfs::detail::jobs
