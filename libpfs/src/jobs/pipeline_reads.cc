// pipeline_reads.cc: what PipelineEngine shows of runs: listing and
// inspecting them (live figures from the scheduler), their datums,
// restart-datum, logs (stored, live, followed) and flush-commit.
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <pfs/json.h>

#include "fail.h"
#include "names.h"
#include "pipeline_engine.h"

namespace pfs::detail::jobs {

namespace fs = std::filesystem;

// ---- runs, datums, logs --------------------------------------------------------

std::optional<PipelineRun> PipelineEngine::current_run(const std::string& pipeline, std::uint64_t n) {
  {
    std::lock_guard lk(mu_);
    std::string id = run_id(pipeline, n);
    if (auto it = running_.find(pipeline); it != running_.end() && it->second.id == id) return it->second;
    for (const auto& q : queue_)
      if (q.id == id) return q;
  }
  return read_run(pipeline, n);
}

Result<std::vector<PipelineRun>> PipelineEngine::list_runs(const RunFilter& filter) {
  return guard([&] {
    std::vector<std::string> names;
    if (!filter.pipeline.empty())
      names.push_back(need(filter.pipeline).info.spec.name);
    else
      names = pipeline_names();
    std::string commit;
    if (!filter.commit.empty()) commit = unwrap(store_.inspect_commit(filter.commit)).id;
    std::vector<PipelineRun> all;
    // With a commit, every pipeline's runs are looked at: one that reads
    // the commit through upstream pipelines' outputs counts too.
    for (const auto& p : commit.empty() ? names : pipeline_names()) {
      auto m = load_meta(p);
      if (!m) continue;
      for (std::uint64_t n = m->next_run; n-- > 1;)
        if (auto r = current_run(p, n)) all.push_back(std::move(*r));
    }
    std::vector<PipelineRun> out;
    if (commit.empty()) {
      out = std::move(all);
    } else {
      std::set<std::string> commits = {commit};
      std::vector<bool> taken(all.size(), false);
      for (bool grew = true; grew;) {
        grew = false;
        for (std::size_t i = 0; i < all.size(); i++) {
          if (taken[i]) continue;
          bool reads = commits.count(all[i].output_commit) > 0;
          for (const auto& e : all[i].provenance) reads |= commits.count(e.commit) > 0;
          if (!reads) continue;
          taken[i] = grew = true;
          if (!all[i].output_commit.empty()) commits.insert(all[i].output_commit);
        }
      }
      for (std::size_t i = 0; i < all.size(); i++)
        if (taken[i] && (filter.pipeline.empty() || all[i].pipeline == filter.pipeline)) out.push_back(std::move(all[i]));
    }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.queued_ns > b.queued_ns; });
    return out;
  });
}

Result<PipelineRun> PipelineEngine::inspect_run(std::string_view id) {
  return guard([&] {
    auto [p, n] = parse_run_id(id);
    need(p);
    auto r = current_run(p, n);
    if (!r) failf(ErrorCode::kNotFound, "pipeline {} has no run {} (list them with: pachctl list-run -p {})", p, n, p);
    return *r;
  });
}

Result<PipelineRun> PipelineEngine::wait_run(std::string_view id, std::chrono::milliseconds wait) {
  return guard([&] {
    auto [p, n] = parse_run_id(id);
    auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      auto r = unwrap(inspect_run(id));
      if (ended(r.state) || std::chrono::steady_clock::now() >= deadline) return r;
      std::unique_lock lk(mu_);
      cv_.wait_until(lk, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(200)));
    }
  });
}

Result<std::vector<DatumInfo>> PipelineEngine::list_datums(std::string_view id) {
  return guard([&] {
    auto run = unwrap(inspect_run(id));
    std::vector<DatumInfo> out;
    {
      std::lock_guard lk(mu_);
      if (auto it = live_datums_.find(run.id); it != live_datums_.end() && it->second.table) {
        const auto& table = *it->second.table;
        for (std::size_t i = 0; i < table.size(); i++) {
          auto p = it->second.pending.find(i);
          out.push_back(p != it->second.pending.end() ? p->second : table[i].info);
        }
      }
    }
    if (out.empty())
      for (auto& d : read_datums(run.pipeline, run.number)) out.push_back(std::move(d.info));
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
  });
}

Result<PipelineRun> PipelineEngine::restart_datum(std::string_view pipeline, std::string_view datum) {
  return guard([&] {
    must_run();
    PipelineMeta m = need(pipeline);
    std::string name = m.info.spec.name;
    if (datum.empty()) fail(ErrorCode::kInvalidArgument, "name a datum (its id, as pachctl list-datum shows)");
    // The datum, by id or unique prefix, in the newest run that has a table.
    std::string found;
    for (std::uint64_t n = m.next_run; n-- > 1 && found.empty();) {
      for (const auto& d : read_datums(name, n))
        if (d.info.id.rfind(datum, 0) == 0) {
          if (!found.empty() && found != d.info.id)
            failf(ErrorCode::kInvalidArgument, "datum prefix {} is ambiguous in run {}@{}", datum, name, n);
          found = d.info.id;
        }
    }
    if (found.empty())
      failf(ErrorCode::kNotFound, "pipeline {} has no datum {} (list them with: pachctl list-datum {})", name, datum,
            m.info.last_run.empty() ? name + "@1" : m.info.last_run);
    {
      std::lock_guard rl(records_mu_);
      m = need(pipeline);
      m.forced.insert(found);
      save_meta(m);
    }
    commit_records(fmt::format("restart datum {} of pipeline {}", found, name));
    // Its cached output (from a run that did not end) is forgotten too.
    std::error_code ec;
    fs::path cache = work_ / "pipelines" / name / "cache";
    for (const auto& [key, line] : read_cache_journal(cache))
      if (line.value("id", "") == found) {
        fs::remove_all(cache / key, ec);
        fs::remove(cache / (key + ".log"), ec);
      }
    // A run on the same inputs as the newest: force a new one.
    PipelineRun r = queue_run(m, "restart-datum " + found, {}, true);
    return r;
  });
}

Result<void> PipelineEngine::get_logs(const LogFilter& filter, Sink& out) {
  return guard([&] {
    std::vector<PipelineRun> runs;
    if (!filter.run.empty()) {
      runs.push_back(unwrap(inspect_run(filter.run)));
    } else if (!filter.pipeline.empty()) {
      runs = unwrap(list_runs(RunFilter{filter.pipeline, ""}));
      std::reverse(runs.begin(), runs.end());  // oldest first
    } else {
      fail(ErrorCode::kInvalidArgument, "say whose logs: a pipeline (-p NAME) or a run (--run NAME@N)");
    }
    // Bytes of each run/datum's log written so far; SIZE_MAX once whole.
    std::map<std::string, std::size_t> shown;
    // Writes what `text` (a datum's log so far, or whole) has beyond what
    // was shown: whole lines only while it may still grow.
    auto emit = [&](const PipelineRun& r, const std::string& datum, const std::string& text, bool whole = true) {
      std::size_t& done = shown[r.id + "/" + datum];
      if (done == SIZE_MAX || done >= text.size()) {
        if (whole) done = SIZE_MAX;
        return;
      }
      std::size_t upto = text.size();
      if (!whole) {
        auto nl = text.rfind('\n');
        if (nl == std::string::npos || nl < done) return;
        upto = nl + 1;
      }
      std::string part = text.substr(done, upto - done);
      done = whole ? SIZE_MAX : upto;
      const std::string& piece = part;
      bool prefix = filter.datum.empty();
      std::string block;
      std::size_t pos = 0;
      while (pos < piece.size()) {
        std::size_t nl = piece.find('\n', pos);
        std::size_t end = nl == std::string::npos ? piece.size() : nl + 1;
        if (prefix) block += fmt::format("{} {} ", r.id, datum.substr(0, 12));
        block.append(piece, pos, end - pos);
        if (nl == std::string::npos) block += '\n';
        pos = end;
      }
      unwrap(out.write(std::span<const char>(block.data(), block.size())));
    };
    auto stored = [&](const PipelineRun& r) {
      auto l = store_.list_files(Ref::branch(kPipelinesBranch), fmt::format("logs/{}/{}", r.pipeline, r.number));
      if (!l) return;
      for (const auto& f : *l) {
        std::string base = path_base(f.path);
        std::string d = base.substr(0, base.find('.'));
        if (!filter.datum.empty() && d.rfind(filter.datum, 0) != 0) continue;
        if (auto t = read_text(f.path)) emit(r, d, *t);
      }
    };
    // Logs of datums a live run has finished (its cache).
    auto live = [&](const PipelineRun& r) {
      fs::path run_logs = work_ / "pipelines" / r.pipeline / "logs" / std::to_string(r.number);
      std::error_code ec;
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(run_logs, ec)) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        std::string d = f.stem().string();
        if (!filter.datum.empty() && d.rfind(filter.datum, 0) != 0) continue;
        emit(r, d, read_file(f));
      }
    };
    // The datums running now: each worker's folder says which datum its
    // log is of (pipeline_worker.cc); read before and after the log, so a
    // log that moved on to the next datum meanwhile is not misattributed.
    auto running = [&](const PipelineRun& r) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(work_ / "pipelines" / r.pipeline, ec)) {
        std::string wname = e.path().filename().string();
        if (wname.size() < 2 || wname[0] != 'w') continue;
        fs::path ctl = e.path() / "ctl";
        std::string before = read_file(ctl / "datum");
        std::string text = read_file(ctl / "log");
        if (before.empty() || before != read_file(ctl / "datum")) continue;
        std::istringstream in(before);
        std::string run, datum;
        in >> run >> datum;
        if (run != r.id || (!filter.datum.empty() && datum.rfind(filter.datum, 0) != 0)) continue;
        emit(r, datum, text, false);
      }
    };
    for (auto& r : runs) {
      if (ended(r.state)) {
        stored(r);
        continue;
      }
      live(r);
      if (!filter.follow) continue;
      running(r);
      for (;;) {
        auto now = unwrap(inspect_run(r.id));
        if (ended(now.state)) {
          live(now);
          stored(now);
          break;
        }
        live(now);
        running(now);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
  });
}

Result<std::vector<PipelineRun>> PipelineEngine::flush_commit(std::string_view commit,
                                                              std::chrono::milliseconds wait) {
  return guard([&] {
    CommitInfo c = unwrap(store_.inspect_commit(commit));
    start_threads();  // an engine that runs pipelines only when asked: now
    auto deadline = std::chrono::steady_clock::now() + wait;
    std::map<std::string, std::vector<std::string>> inputs;
    std::map<std::string, PipelineMeta> metas;
    for (const auto& p : pipeline_names())
      if (auto m = load_meta(p)) {
        inputs[p] = pipeline_inputs(m->info.spec);
        metas[p] = *m;
      }
    // Pipelines downstream of the commit's branch, upstream first.
    std::vector<std::string> order;
    std::set<std::string> reach = downstream(inputs, c.branch);
    for (std::set<std::string> done; done.size() < reach.size();) {
      std::size_t before = done.size();
      for (const auto& p : reach) {
        if (done.count(p)) continue;
        bool ready = true;
        for (const auto& in : inputs[p]) ready &= !reach.count(in) || done.count(in);
        if (ready) {
          order.push_back(p);
          done.insert(p);
        }
      }
      if (done.size() == before) break;  // (a cycle cannot be created)
    }
    std::map<std::string, std::int64_t> time_of = {{c.id, c.time_ns}};
    auto created_after_all = [&](const PipelineMeta& m, const std::vector<ProvenanceEntry>& required) {
      for (const auto& r : required) {
        auto t = time_of.find(r.commit);
        if (t == time_of.end()) t = time_of.emplace(r.commit, unwrap(store_.inspect_commit(r.commit)).time_ns).first;
        if (m.info.created_ns <= t->second) return false;
      }
      return true;
    };
    for (;;) {
      // In DAG order, each pipeline's run is the one that read, for each of
      // its inputs in the flush, the commit the flush is about: the commit
      // itself on its branch, and on an upstream pipeline's branch the
      // output of that pipeline's run found before (a pipeline reading both
      // a branch and its derivative has a run on each; the second counts).
      std::vector<PipelineRun> found;
      std::vector<std::string> waiting;
      std::map<std::string, std::string> output_of;  // pipeline -> its run's output commit
      std::set<std::string> failed, pending, absent;
      for (const auto& p : order) {
        const PipelineMeta& m = metas[p];
        std::vector<ProvenanceEntry> required;
        bool upstream_failed = false, upstream_pending = false, upstream_absent = false, direct = false;
        for (const auto& in : inputs[p]) {
          if (in == c.branch) {
            required.push_back({in, c.id});
            direct = true;
          } else if (reach.count(in)) {
            upstream_failed |= failed.count(in) > 0;
            upstream_pending |= pending.count(in) > 0;
            upstream_absent |= absent.count(in) > 0;
            if (output_of.count(in)) required.push_back({in, output_of[in]});
          }
        }
        if (upstream_pending) {
          pending.insert(p);
          waiting.push_back(p + " (after its upstream)");
          continue;
        }
        if (upstream_absent && !direct && !upstream_failed) {
          absent.insert(p);  // it will not run on this commit
          continue;
        }
        std::optional<PipelineRun> hit;
        auto fresh = load_meta(p);
        std::uint64_t next = fresh ? fresh->next_run : m.next_run;
        for (std::uint64_t n = next; n-- > 1 && !hit;) {
          auto r = current_run(p, n);
          if (!r) continue;
          bool all = true;
          for (const auto& need : required)
            all &= std::find(r->provenance.begin(), r->provenance.end(), need) != r->provenance.end();
          // Below a failed upstream run the record that says so counts.
          bool says_unrunnable = upstream_failed && r->state == PipelineRunState::kUnrunnable &&
                                 std::any_of(r->provenance.begin(), r->provenance.end(),
                                             [&](const ProvenanceEntry& e) { return e.commit == c.id; });
          if ((all && !required.empty()) || says_unrunnable) hit = r;
          if (r->queued_ns < c.time_ns) break;  // older runs cannot have read it
        }
        if (hit) {
          found.push_back(*hit);
          if (!ended(hit->state)) {
            pending.insert(p);
            waiting.push_back(hit->id);
          } else if (hit->state == PipelineRunState::kSuccess) {
            output_of[p] = hit->output_commit;
          } else {
            failed.insert(p);
          }
        } else if ((fresh ? fresh->info.stopped : m.info.stopped) ||
                   (!upstream_failed && created_after_all(m, required))) {
          // Stopped, or created after every commit it would read here and
          // never ran on them (its first run read newer heads). Created
          // before one of them (an upstream output made during this
          // flush), the trigger queues its run: pending, below.
          absent.insert(p);
        } else {
          pending.insert(p);
          waiting.push_back(p + " (not queued yet)");
        }
      }
      if (waiting.empty()) return found;
      if (std::chrono::steady_clock::now() >= deadline)
        failf(ErrorCode::kBusy, "runs on commit {} still going after {} ms: {}", c.id, wait.count(),
              fmt::join(waiting, ", "));
      std::unique_lock lk(mu_);
      cv_.wait_until(lk, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(200)));
    }
  });
}

}  // namespace pfs::detail::jobs
