// pipeline_run.cc: one run of a pipeline: its input files and their
// content hashes, its datums, which of them can be reused (skipped: from
// the last successful run's output; recovered: finished by an unfinished
// run, kept in the cache), the rest processed in `parallelism`
// containers, then the output assembled on the output branch -- the last
// output less what changed, plus the new -- and committed with its
// provenance.
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <pfs/json.h>

#include "fail.h"
#include "datum_pool.h"
#include "names.h"
#include "pipeline_engine.h"
#include "pipeline_worker.h"
#include "spec.h"

namespace pfs::detail::jobs {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// SHA-256 of what is written, as hex.
class HashSink final : public Sink {
 public:
  HashSink() : ctx_(EVP_MD_CTX_new()) { reset(); }
  // Starts a new hash in the same context (one context for many hashes).
  void reset() {
    if (!ctx_ || !EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr)) fail(ErrorCode::kInternal, "SHA-256 init failed");
  }
  ~HashSink() override { EVP_MD_CTX_free(ctx_); }
  Result<void> write(std::span<const char> data) override {
    EVP_DigestUpdate(ctx_, data.data(), data.size());
    return {};
  }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(2 * len, '0');
    for (unsigned i = 0; i < len; i++) out[2 * i] = kHex[md[i] >> 4], out[2 * i + 1] = kHex[md[i] & 0xF];
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string sha_hex(std::string_view s, std::size_t digits) {
  HashSink h;
  (void)h.write(std::span<const char>(s.data(), s.size()));
  return h.hex().substr(0, digits);
}

void write_small(const fs::path& file, std::string_view data) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) fail_errno(errno, "create " + file.string());
  write_all(fd.get(), data.data(), data.size(), file.string());
}


// Files for put_files, from (path on the branch, local file) pairs.
class LocalFiles final : public FileBatch {
 public:
  explicit LocalFiles(std::vector<std::pair<std::string, fs::path>> files) : files_(std::move(files)) {}
  Result<Source*> next(std::string& path) override {
    if (i_ >= files_.size()) return static_cast<Source*>(nullptr);
    auto& [rel, local] = files_[i_++];
    fd_ = UniqueFd(::open(local.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_) return Error{ErrorCode::kIo, errno_message("open " + local.string(), errno)};
    src_ = Source::from_fd(fd_.get());
    path = rel;
    return src_.get();
  }

 private:
  std::vector<std::pair<std::string, fs::path>> files_;
  std::size_t i_ = 0;
  UniqueFd fd_;
  std::unique_ptr<Source> src_;
};

// A datum in the cache that can be reused: the journal has its line, and
// every output it lists is there with the size it had (what a machine
// crash before the data reached the disk would break). Anything else is
// removed.
bool cached_whole(const fs::path& dir, const json* meta) {
  std::error_code ec;
  bool ok = meta && meta->contains("outputs") && meta->contains("sizes") && (*meta)["outputs"].is_array() &&
            (*meta)["sizes"].is_array() && (*meta)["outputs"].size() == (*meta)["sizes"].size();
  for (std::size_t i = 0; ok && i < (*meta)["outputs"].size(); i++) {
    const json& o = (*meta)["outputs"][i];
    const json& sz = (*meta)["sizes"][i];
    ok = o.is_string() && sz.is_number_unsigned();
    if (ok) {
      auto size = fs::file_size(dir / o.get<std::string>(), ec);
      ok = !ec && size == sz.get<std::uint64_t>();
    }
  }
  if (!ok) fs::remove_all(dir, ec);
  return ok;
}

std::string describe_files(const DatumInfo& d) {
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < d.files.size() && i < 3; i++) parts.push_back(d.files[i].input + "/" + d.files[i].path);
  if (d.files.size() > 3) parts.push_back(fmt::format("and {} more", d.files.size() - 3));
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::string tail_of(const std::string& log, std::size_t n) {
  std::string s = log.size() > n ? "..." + log.substr(log.size() - n) : log;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::map<std::string, json> read_cache_journal(const fs::path& cache) {
  std::map<std::string, json> out;
  std::istringstream in(read_file(cache / "journal"));
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, false);  // (a line a kill -9 cut short does not parse)
    if (!j.is_object() || !j.contains("key") || !j["key"].is_string()) continue;
    std::string key = j["key"].get<std::string>();  // (before the move: json's operator= takes its value first)
    out[key] = std::move(j);
  }
  return out;
}

WorkerSetup PipelineEngine::worker_setup(const PipelineSpec& spec, const Image& image, const fs::path& binary,
                                         const fs::path& dir) {
  WorkerSetup setup;
  setup.image = image;
  setup.cmd = spec.cmd;
  for (const auto& [key, value] : spec.env) setup.env.push_back(key + "=" + value);
  setup.env.push_back("PACH_PIPELINE_NAME=" + spec.name);
  setup.stdin_lines = spec.stdin_lines;
  std::function<void(const PipelineInput&)> names = [&](const PipelineInput& in) {
    if (in.kind == PipelineInput::Kind::kPfs)
      setup.inputs.insert(in.name.empty() ? in.repo : in.name);
    else
      for (const auto& c : in.inputs) names(c);
  };
  names(spec.input);
  setup.memory = spec.memory ? spec.memory : opts_.default_memory;
  setup.cpus = spec.cpu;
  setup.pids = opts_.pids_limit;
  setup.max_log_bytes = opts_.max_log_bytes;
  setup.dir = dir;
  setup.worker_binary = binary;
  setup.start_timeout = std::chrono::seconds(opts_.start_timeout);
  return setup;
}

// The datum's files, from the input commits, where the container sees
// them (a reflink on btrfs: the store and the work folder share it).
void PipelineEngine::materialize(const Datum& d, DatumWorker& w, const std::map<std::string, std::string>& commit_of) {
  for (const auto& part : d.parts)
    for (const auto& f : part.files) {
      UniqueFd fd = w.place(part.input, f.path);
      auto sink = Sink::to_fd(fd.get());
      unwrap(store_.get_file(Ref::commit(commit_of.at(part.repo)), f.path, *sink));
    }
}

PipelineRun PipelineEngine::execute(PipelineRun run) {
  must_run();
  PipelineMeta m = need(run.pipeline);
  const PipelineSpec& spec = m.info.spec;
  run.spec_version = m.info.version;  // (an update since it was queued applies)
  const std::string& out_branch = run.pipeline;
  fs::path pdir = work_ / "pipelines" / run.pipeline;
  fs::path cache = pdir / "cache";
  fs::path run_logs = pdir / "logs" / std::to_string(run.number);
  fs::create_directories(cache);
  fs::create_directories(run_logs);
  std::error_code ec;

  // A run killed after committing its output (before recording it): the
  // commit is there, and is adopted.
  auto ob = store_.inspect_branch(out_branch);
  if (ob && !ob->head.empty()) {
    CommitInfo head = unwrap(store_.inspect_commit(ob->head));
    // (The run id alone could be an earlier pipeline's of the same name.)
    if (head.message.find(fmt::format("\nrun: {} {}\n", run.id, run.queued_ns)) != std::string::npos) {
      run.state = PipelineRunState::kSuccess;
      run.output_commit = head.id;
      run.output = head.stats;
      run.finished_ns = now_ns();
      return run;
    }
  }

  Image image = images_.get(spec.image);

  // ---- input files and their content hashes ----
  std::optional<PipelineRun> prev_ok;
  std::vector<DatumRecord> prev_table;
  if (m.last_success && m.last_success < run.number) {
    prev_ok = read_run(run.pipeline, m.last_success);
    if (prev_ok) prev_table = read_datums(run.pipeline, m.last_success);
  }
  // (repo, path) -> hash, size: what the last successful run hashed.
  std::map<std::pair<std::string, std::string>, std::pair<std::string, std::uint64_t>> known;
  for (const auto& d : prev_table)
    for (const auto& f : d.hashed) known.emplace(std::pair{f.repo, f.path}, std::pair{f.hash, f.size});
  // With the same input spec, the files the datums can hold are the last
  // run's plus what the store's diff says changed: no listing of the whole
  // input (what makes a run on 1% of 100,000 files cost about 1%).
  // Exact because whether a file is in a datum depends on its own path and
  // the globs only; not so in a cross, where a side without datums leaves
  // the other side's files out of the table: those are listed.
  std::function<bool(const PipelineInput&)> has_cross = [&](const PipelineInput& in) {
    if (in.kind == PipelineInput::Kind::kCross) return true;
    for (const auto& c : in.inputs)
      if (has_cross(c)) return true;
    return false;
  };
  std::string input_key = short_hash(json::parse(pipeline_json(spec)).at("input").dump());
  bool same_input = prev_ok && m.last_success_input == input_key && !has_cross(spec.input);
  auto hash_of = [&](const std::string& commit, const std::string& path) {
    HashSink h;
    unwrap(store_.get_file(Ref::commit(commit), path, h));
    return h.hex();
  };
  std::map<std::string, std::vector<InputFile>> files;
  std::map<std::string, std::string> commit_of;
  for (const auto& p : run.provenance) {
    commit_of[p.branch] = p.commit;
    auto& list = files[p.branch];
    if (p.commit.empty()) continue;
    std::optional<std::vector<DiffEntry>> diff;
    if (prev_ok)
      for (const auto& q : prev_ok->provenance)
        if (q.branch == p.branch && !q.commit.empty())
          if (auto d = store_.diff(Ref::commit(q.commit), Ref::commit(p.commit))) diff = std::move(*d);
    if (diff && same_input) {
      std::map<std::string, DiffEntry> changes;
      for (auto& e : *diff) changes.emplace(e.path, std::move(e));
      auto lo = known.lower_bound({p.branch, ""});
      for (auto it = lo; it != known.end() && it->first.first == p.branch; ++it)
        if (!changes.count(it->first.second)) list.push_back({it->first.second, it->second.first, it->second.second});
      for (const auto& [path, e] : changes)
        if (e.change != DiffEntry::Change::kDeleted) list.push_back({path, hash_of(p.commit, path), e.new_size});
      std::sort(list.begin(), list.end(), [](const InputFile& a, const InputFile& b) { return a.path < b.path; });
      continue;
    }
    std::set<std::string> changed;
    if (diff)
      for (const auto& e : *diff) changed.insert(e.path);
    ListOptions lo;
    lo.recursive = true;
    for (auto& f : unwrap(store_.list_files(Ref::commit(p.commit), "", lo))) {
      if (f.type != FileInfo::Type::kFile) continue;
      InputFile in{f.path, "", f.size};
      auto k = known.find({p.branch, f.path});
      if (diff && !changed.count(f.path) && k != known.end() && k->second.second == f.size)
        in.hash = k->second.first;
      else
        in.hash = hash_of(p.commit, f.path);
      list.push_back(std::move(in));
    }
  }

  // ---- datums, keys, and what can be reused ----
  std::vector<Datum> datums = make_datums(spec.input, [&](const std::string& repo) -> const std::vector<InputFile>& {
    return files[repo];
  });
  json key_doc = {{"image", image.id},        {"cmd", spec.cmd},
                  {"stdin", spec.stdin_lines}, {"env", spec.env},
                  {"input", json::parse(pipeline_json(spec)).at("input")},
                  {"salt", m.salt},           {"every", spec.reprocess == ReprocessSpec::kEveryJob ? run.number : 0}};
  std::string spec_key = sha_hex(key_doc.dump(), 32);
  std::string out_head = ob ? ob->head : std::string();
  bool base_ok = prev_ok && !prev_ok->output_commit.empty() && out_head == prev_ok->output_commit;
  // (Hashed, and views of prev_table's keys: 100,000 datums in ordered
  // maps of strings were a tenth of an incremental run.)
  std::unordered_map<std::string_view, const DatumRecord*> prev_by_key;
  if (base_ok)
    for (const auto& d : prev_table) prev_by_key[d.key] = &d;

  // What earlier, unfinished runs finished (recovered below), and where
  // this run adds its own.
  std::map<std::string, json> journal = read_cache_journal(cache);
  UniqueFd journal_fd(::open((cache / "journal").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!journal_fd) fail_errno(errno, "open " + (cache / "journal").string());
  UniqueFd cache_fd = open_dir(AT_FDCWD, cache.string());
  // A datum's key: sha_hex(spec_key + id, 32), with one context for all.
  HashSink key_hash;
  auto key_of = [&](const std::string& id) {
    key_hash.reset();
    (void)key_hash.write(std::span<const char>(spec_key.data(), spec_key.size()));
    (void)key_hash.write(std::span<const char>(id.data(), id.size()));
    return key_hash.hex().substr(0, 32);
  };
  std::vector<DatumRecord> table(datums.size());
  std::vector<std::size_t> pending;
  run.datums = {};
  run.datums.total = datums.size();
  for (std::size_t i = 0; i < datums.size(); i++) {
    DatumRecord& r = table[i];
    r.info.id = datums[i].id;
    r.key = key_of(datums[i].id);
    for (const auto& part : datums[i].parts)
      for (const auto& f : part.files) {
        r.info.files.push_back({part.input, f.path});
        r.hashed.push_back({part.repo, f.path, f.hash, f.size});
      }
    bool forced = m.forced.count(r.info.id) > 0;
    auto pk = prev_by_key.find(r.key);
    if (!forced && pk != prev_by_key.end() && pk->second->info.state != DatumState::kFailed) {
      r.info.state = DatumState::kSkipped;
      r.info.outputs = pk->second->info.outputs;
      run.datums.skipped++;
    } else if (auto jm = journal.find(r.key);
               !forced && jm != journal.end() && cached_whole(cache / r.key, &jm->second)) {
      r.info.state = DatumState::kRecovered;
      const json& meta = jm->second;
      r.info.outputs = meta.value("outputs", std::vector<std::string>{});
      r.info.duration_ns = meta.value("duration_ns", std::int64_t{0});
      r.info.tries = meta.value("tries", 1u);
      if (meta.value("log", false))
        fs::copy_file(cache / (r.key + ".log"), run_logs / (r.info.id + ".log"), fs::copy_options::overwrite_existing,
                      ec);
      run.datums.recovered++;
    } else {
      r.info.state = DatumState::kPending;
      pending.push_back(i);
    }
  }
  // What list-datum shows while the run goes on: the table (its skipped
  // and recovered datums do not change from here) and a copy of each
  // pending datum, updated under mu_ (the table's own entries are the
  // workers'). Not a copy of all: 100,000 datums would cost 0.3 s.
  {
    std::lock_guard lk(mu_);
    LiveDatums& live = live_datums_[run.id];
    live.table = &table;
    for (std::size_t i : pending) live.pending[i] = table[i].info;
    running_[run.pipeline].datums = run.datums;
  }
  struct Unlive {
    PipelineEngine* self;
    std::string id;  // (a copy: `return run` moves run.id before this runs)
    ~Unlive() {
      std::lock_guard lk(self->mu_);
      self->live_datums_.erase(id);
    }
  } unlive{this, run.id};

  // ---- processing ----
  auto datum_timeout = spec.datum_timeout;
  auto deadline = std::chrono::steady_clock::now() +
                  (spec.job_timeout.count() > 0 ? spec.job_timeout : std::chrono::seconds(opts_.run_timeout));
  std::string failure;  // the first failed datum's story (under mu_)
  fs::path worker_binary = find_worker_binary({});
  std::vector<std::string> logs(pending.size());  // each pending datum's last output
  DatumLoop<DatumWorker> loop;
  loop.count = pending.size();
  loop.parallel = std::max<std::uint32_t>(spec.parallelism, 1);
  loop.tries = std::max<std::uint32_t>(spec.datum_tries, 1);
  loop.make = [&](std::size_t k) {
    return std::make_unique<DatumWorker>(runtime_,
                                         worker_setup(spec, image, worker_binary, pdir / fmt::format("w{}", k)));
  };
  loop.watch = [&](DatumWorker& w, bool made) {
    std::lock_guard lk(mu_);
    if (made)
      live_pids_[run.id].push_back(w.pid());
    else
      std::erase(live_pids_[run.id], w.pid());
  };
  loop.run = [&](std::size_t i, std::uint32_t attempt, DatumWorker& w) -> DatumTry {
    DatumRecord& r = table[pending[i]];
    if (attempt == 1) {
      std::lock_guard lk(mu_);
      r.info.state = DatumState::kRunning;
      live_datums_[run.id].pending[pending[i]] = r.info;
    }
    r.info.tries = attempt;
    w.clear();
    materialize(datums[pending[i]], w, commit_of);
    DatumOutcome o = w.run(r.info.id, run.id, std::chrono::duration_cast<std::chrono::milliseconds>(datum_timeout));
    std::string& log = logs[i];
    log = w.log();
    if (o.log_dropped)
      log += fmt::format("\n[pfs: {} more bytes of output were dropped (log limit {} bytes)]\n", o.log_dropped,
                         opts_.max_log_bytes);
    r.info.duration_ns = o.duration_ns;
    if (!o.ok) return DatumTry{false, o.error, o.container_lost, false};
    // Into the cache: cache/<key>/ is what /pfs/out held, cache/<key>.log
    // its log, and a line of cache/journal (appended last, in one write)
    // makes it whole; a kill -9 before that line leaves a folder no run
    // reuses (the next one to process the datum replaces it). Two inodes
    // for a one-file datum, moved by descriptors: a datum's own file
    // traffic is what the engine adds to the command's time. (A datum
    // that finished is kept even when the run is being stopped: the run
    // that resumes it reuses it.)
    if (::mkdirat(cache_fd.get(), r.key.c_str(), 0755) != 0) {
      if (errno != EEXIST) fail_errno(errno, "create " + (cache / r.key).string());
      remove_tree(cache_fd.get(), r.key);
      if (::mkdirat(cache_fd.get(), r.key.c_str(), 0755) != 0) fail_errno(errno, "create " + (cache / r.key).string());
    }
    r.info.outputs.clear();
    std::vector<std::uint64_t> sizes;
    for (auto& [path, size] : w.take_outputs(cache_fd.get(), r.key)) {
      r.info.outputs.push_back(std::move(path));
      sizes.push_back(size);
    }
    if (!log.empty()) write_small(cache / (r.key + ".log"), log);
    json meta = {{"key", r.key},          {"id", r.info.id},  {"outputs", r.info.outputs},
                 {"sizes", sizes},        {"log", !log.empty()}, {"duration_ns", r.info.duration_ns},
                 {"tries", r.info.tries}};
    std::string line = meta.dump() + "\n";
    write_all(journal_fd.get(), line.data(), line.size(), (cache / "journal").string());
    return DatumTry{true, {}, false, false};
  };
  loop.ended = [&](std::size_t i, const DatumTry& last, std::uint32_t tries, bool cut) {
    DatumRecord& r = table[pending[i]];
    const std::string& log = logs[i];
    if (!log.empty()) {
      std::ofstream lf(run_logs / (r.info.id + ".log"), std::ios::binary);
      lf << log;
    }
    std::lock_guard lk(mu_);
    r.info.tries = tries;
    if (last.ok) {
      r.info.state = DatumState::kProcessed;
      r.info.error.clear();
      run.datums.processed++;
    } else if (!cut) {
      r.info.state = DatumState::kFailed;
      r.info.error = last.error;
      run.datums.failed++;
      if (failure.empty())
        failure = fmt::format("datum {} ({}) failed {} time(s): {}{}{}", r.info.id.substr(0, 12),
                              describe_files(r.info), tries, last.error, log.empty() ? "" : "; its output ends: ",
                              tail_of(log, 300));
    } else {
      r.info.state = DatumState::kPending;  // cut short by the stop: not done
      r.info.error = last.error;
    }
    live_datums_[run.id].pending[pending[i]] = r.info;
    running_[run.pipeline].datums = run.datums;
  };
  loop.left = [&] {
    { std::lock_guard lk(mu_); }  // (the watcher below is waiting, or about to look)
    cv_.notify_all();
  };
  DatumPool<DatumWorker> pool(std::move(loop));
  // Watch for a stop, the engine's end and the run's time limit.
  std::string stopped_why;
  {
    std::unique_lock lk(mu_);
    while (!pool.finished()) {
      cv_.wait_for(lk, std::chrono::milliseconds(200));
      std::string why;
      if (stopping_) why = "the engine stopped (resumed when it starts again)";
      else if (stop_requested_.count(run.pipeline)) why = "the pipeline was stopped (start-pipeline resumes the run)";
      else if (std::chrono::steady_clock::now() > deadline)
        why = fmt::format("the run took longer than its job_timeout ({} s)",
                          (spec.job_timeout.count() > 0 ? spec.job_timeout : std::chrono::seconds(opts_.run_timeout)).count());
      if (!why.empty() && stopped_why.empty()) {
        stopped_why = why;
        pool.abort();
        for (pid_t p : live_pids_[run.id]) ::kill(p, SIGKILL);
      }
    }
  }
  pool.join();

  auto save_table = [&] {
    std::lock_guard rl(records_mu_);
    write_datums(run.pipeline, run.number, table);
    if (!fs::is_empty(run_logs, ec))
      unwrap(store_.put_dir(kPipelinesBranch, fmt::format("logs/{}/{}", run.pipeline, run.number), run_logs));
  };
  if (!stopped_why.empty() || !failure.empty()) {
    bool killed = !stopped_why.empty() && stopped_why.find("job_timeout") == std::string::npos;
    run.state = killed ? PipelineRunState::kKilled : PipelineRunState::kFailure;
    run.reason = failure.empty() ? stopped_why : failure;
    if (!killed) {
      save_table();
      fs::remove_all(run_logs, ec);
    }
    run.finished_ns = now_ns();
    return run;
  }

  // ---- collisions: two datums writing one path ----
  std::map<std::string, std::string> owner;  // output path -> datum id
  for (const auto& r : table)
    for (const auto& o : r.info.outputs) {
      auto [it, fresh] = owner.emplace(o, r.info.id);
      if (!fresh) {
        const DatumRecord* other = nullptr;
        for (const auto& x : table)
          if (x.info.id == it->second) other = &x;
        run.state = PipelineRunState::kFailure;
        run.reason = fmt::format("two datums write /pfs/out/{}: datum {} ({}) and datum {} ({}); make each datum "
                                 "write paths of its own (e.g. named after its input file)",
                                 o, it->second.substr(0, 12), other ? describe_files(other->info) : "?",
                                 r.info.id.substr(0, 12), describe_files(r.info));
      }
    }
  for (const auto& [path, id] : owner)
    for (std::string p = path_parent(path); !p.empty() && run.state != PipelineRunState::kFailure; p = path_parent(p))
      if (auto f = owner.find(p); f != owner.end())
        {
          run.state = PipelineRunState::kFailure;
          run.reason = fmt::format("datum {} writes the file /pfs/out/{} and datum {} writes /pfs/out/{} below it",
                                   f->second.substr(0, 12), p, id.substr(0, 12), path);
        }
  if (run.state == PipelineRunState::kFailure) {
    save_table();
    fs::remove_all(run_logs, ec);
    run.finished_ns = now_ns();
    return run;
  }

  // ---- the output: the last one less what changed, plus the new ----
  if (!ob) {
    unwrap(store_.create_branch(out_branch, ""));
    for (const auto& f : unwrap(store_.list_files(Ref::branch(out_branch), ""))) unwrap(store_.delete_file(out_branch, f.path));
    ob = store_.inspect_branch(out_branch);
  }
  if (ob->dirty && !ob->head.empty()) {
    SetHeadOptions so;
    so.force = true;
    so.expected_head = ob->head;
    unwrap(store_.set_branch_head(out_branch, ob->head, so));
  }
  std::unordered_set<std::string_view> kept;  // (views of the table's keys)
  for (const auto& r : table)
    if (r.info.state == DatumState::kSkipped) kept.insert(r.key);
  std::vector<std::string> remove;
  if (base_ok) {
    // What the datums that changed or went away wrote, less what this run
    // writes again (overwritten below): usually a changed input file
    // gives the same output path, and nothing is deleted.
    std::unordered_set<std::string_view> rewritten;
    for (const auto& r : table)
      if (r.info.state == DatumState::kProcessed || r.info.state == DatumState::kRecovered)
        rewritten.insert(r.info.outputs.begin(), r.info.outputs.end());
    for (const auto& d : prev_table)
      if (!kept.count(d.key))
        for (const auto& o : d.info.outputs)
          if (!rewritten.count(o)) remove.push_back(o);
  } else {
    for (const auto& f : unwrap(store_.list_files(Ref::branch(out_branch), ""))) remove.push_back(f.path);
  }
  std::set<std::string> parents;
  for (const auto& p : remove) {
    auto d = store_.delete_file(out_branch, p);
    if (!d && d.error().code != ErrorCode::kNotFound) throw Fail{std::move(d).error()};
    for (std::string q = path_parent(p); !q.empty(); q = path_parent(q)) parents.insert(q);
  }
  // Folders left empty go too: a from-scratch run would not have them.
  std::vector<std::string> by_depth(parents.begin(), parents.end());
  std::sort(by_depth.begin(), by_depth.end(), [](const auto& a, const auto& b) {
    return std::count(a.begin(), a.end(), '/') > std::count(b.begin(), b.end(), '/');
  });
  for (const auto& q : by_depth) {
    auto l = store_.list_files(Ref::branch(out_branch), q);
    if (l && l->empty()) (void)store_.delete_file(out_branch, q);
  }
  std::vector<std::pair<std::string, fs::path>> add;
  for (const auto& r : table)
    if (r.info.state == DatumState::kProcessed || r.info.state == DatumState::kRecovered)
      for (const auto& o : r.info.outputs) add.emplace_back(o, cache / r.key / o);
  if (!add.empty()) {
    LocalFiles batch(std::move(add));
    unwrap(store_.put_files(out_branch, ".", batch));
  }
  std::vector<std::string> prov;
  for (const auto& p : run.provenance) prov.push_back(p.branch + "@" + p.commit);
  CommitInfo c = unwrap(store_.commit(
      out_branch, fmt::format("{}: pipeline {} on {}\n\nprovenance: {}\nrun: {} {}\nspec: {} (version {})", run.id,
                              run.pipeline, fmt::join(prov, ", "), fmt::join(prov, " "), run.id, run.queued_ns,
                              m.info.spec_number, m.info.version)));
  {
    std::lock_guard lk(mu_);
    success_input_[run.id] = input_key;  // the scheduler records it with the run's end
  }
  run.output_commit = c.id;
  run.output = c.stats;
  run.state = PipelineRunState::kSuccess;
  save_table();
  {
    std::lock_guard rl(records_mu_);
    json idx = {{"run", run.id}, {"provenance", json::parse(json(run).dump()).at("provenance")}};
    write_text(fmt::format("outputs/{}.json", c.id), idx.dump(2) + "\n");
  }
  // Everything the cache held is in the commit now.
  discard(cache);
  discard(run_logs);
  run.finished_ns = now_ns();
  return run;
}

}  // namespace pfs::detail::jobs

namespace pfs::detail::jobs {

Result<DatumTrial> PipelineEngine::run_datum(std::string_view json_text, const DatumTrialOptions& opts) {
  return guard([&] {
    must_run();
    PipelineSpec spec = unwrap(parse_pipeline(json_text));
    if (!opts.output_dir.empty() && fs::exists(opts.output_dir) && !fs::is_empty(opts.output_dir))
      failf(ErrorCode::kInvalidArgument, "{} is not empty; name a new or empty folder for the datum's outputs",
            opts.output_dir);
    // The inputs' heads, every file hashed (the ids are the pipeline's).
    std::map<std::string, std::vector<InputFile>> files;
    std::map<std::string, std::string> commit_of;
    for (const auto& b : pipeline_inputs(spec)) {
      BranchInfo bi = unwrap(store_.inspect_branch(b));
      commit_of[b] = bi.head;
      if (bi.head.empty()) continue;
      ListOptions lo;
      lo.recursive = true;
      for (auto& f : unwrap(store_.list_files(Ref::commit(bi.head), "", lo))) {
        if (f.type != FileInfo::Type::kFile) continue;
        HashSink h;
        unwrap(store_.get_file(Ref::commit(bi.head), f.path, h));
        files[b].push_back({f.path, h.hex(), f.size});
      }
    }
    auto datums = make_datums(spec.input, [&](const std::string& repo) -> const std::vector<InputFile>& {
      return files[repo];
    });
    if (datums.empty())
      failf(ErrorCode::kNotFound, "the spec's input has no datums at the heads of {} (is the glob right?)",
            fmt::join(pipeline_inputs(spec), ", "));
    const Datum* pick = &datums.front();
    if (!opts.datum.empty()) {
      pick = nullptr;
      for (const auto& d : datums) {
        bool hit = d.id.rfind(opts.datum, 0) == 0;
        for (const auto& part : d.parts) {
          std::string want = opts.datum;
          while (!want.empty() && want.front() == '/') want.erase(0, 1);
          hit |= part.root == want || part.input + "/" + part.root == want;
          for (const auto& f : part.files) hit |= f.path == want || part.input + "/" + f.path == want;
        }
        if (hit) {
          pick = &d;
          break;
        }
      }
      if (!pick)
        failf(ErrorCode::kNotFound, "no datum of the spec is {} (give a datum id, or a path of one of its files)",
              opts.datum);
    }
    WorkerSetup setup = worker_setup(spec, images_.get(spec.image), find_worker_binary({}),
                                     work_ / "trials" / random_hex(8));
    DatumTrial trial;
    trial.datum.id = pick->id;
    for (const auto& part : pick->parts)
      for (const auto& f : part.files) trial.datum.files.push_back({part.input, f.path});
    // The outputs move out of the worker's folder (removed with it) to be
    // listed and copied.
    fs::path outs = setup.dir.string() + ".out";
    struct Remove {
      fs::path dir;
      ~Remove() {
        std::error_code rec;
        fs::remove_all(dir, rec);
      }
    } remove_outs{outs};
    {
      DatumWorker w(runtime_, setup);
      materialize(*pick, w, commit_of);
      DatumOutcome o = w.run(pick->id, "trial", std::chrono::duration_cast<std::chrono::milliseconds>(spec.datum_timeout));
      trial.logs = w.log();
      trial.datum.tries = 1;
      trial.datum.duration_ns = o.duration_ns;
      trial.datum.state = o.ok ? DatumState::kProcessed : DatumState::kFailed;
      trial.datum.error = o.error;
      fs::create_directories(outs);
      for (const auto& [rel, size] : w.take_outputs(AT_FDCWD, outs.string())) {
        FileInfo fi;
        fi.path = rel;
        fi.size = size;
        trial.outputs.push_back(fi);
        trial.datum.outputs.push_back(rel);
      }
    }
    if (!opts.output_dir.empty()) {
      fs::create_directories(opts.output_dir);
      for (const auto& rel : trial.datum.outputs) {
        fs::create_directories((fs::path(opts.output_dir) / rel).parent_path());
        fs::copy_file(outs / rel, fs::path(opts.output_dir) / rel, fs::copy_options::overwrite_existing);
      }
    }
    return trial;
  });
}

}  // namespace pfs::detail::jobs
