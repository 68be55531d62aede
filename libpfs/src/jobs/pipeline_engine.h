// pipeline_engine.h: PipelineEngine, the pipelines half of the job engine
// (pfs/pipelines.h; docs/pipelines.md): specs and records on branch
// _pipelines (pipeline_records.cc), the trigger that turns commits into
// runs and their queue (pipeline_engine.cc; run on the RunScheduler it
// shares with the jobs), and one run's datums, reuse
// and output (pipeline_run.cc).
//
// What it keeps on branch `_pipelines` (committed after every change, so
// clone and push carry it):
//   pipelines/<name>/spec.json   the spec (pipeline_json)
//   pipelines/<name>/meta.json   version, spec number, stopped, counters
//   runs/<name>/<n>.json         run n's record (PipelineRun)
//   datums/<name>/<n>.tsv        run n's datums: one line each, with its
//                                key, files (and their content hashes) and
//                                outputs: what the next run reuses
//                                (pipeline_records.cc has the format)
//   logs/<name>/<n>/<datum>.log  a datum's container output
//   outputs/<commit>.json        which run made an output commit, and its
//                                provenance (for flush-commit)
// and in its work folder (<work>/pipelines/<name>/):
//   cache/<key>/, <key>.log      a datum finished by a run that has not
//                                ended: its output and its log, whole once
//                                cache/journal has its line;
//                                a kill -9 keeps them, the resumed run
//                                reuses them ("recovered"), a successful
//                                run's end removes them
//   w<k>/                        worker k's container folders
// and <work>/trash/: folders deleted in the background (discard()).
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <pfs/client.h>
#include <pfs/jobs.h>
#include <pfs/pipelines.h>

#include "container.h"
#include "datums.h"
#include "images.h"
#include "pipeline_worker.h"
#include "scheduler.h"
#include "spec.h"

namespace pfs::detail::jobs {

inline constexpr const char* kPipelinesBranch = "_pipelines";

// A pipeline's stored state besides its spec.
struct PipelineMeta {
  PipelineInfo info;
  std::uint64_t next_run = 1;
  std::uint64_t last_success = 0;  // number of its newest successful run (0: none)
  std::uint64_t salt = 0;          // +1 for update --reprocess: every datum key changes
  std::set<std::string> forced;    // datum ids restart_datum named, until a run succeeds
  std::string last_success_input;  // hash of that run's input spec (its file list can be reused)
};

// A datum as a run's table keeps it.
struct DatumRecord {
  DatumInfo info;
  std::string key;  // what its output depends on: the datum id, the spec's key, the salt
  // The files it read: repo, path, content hash, size (the next run's
  // hashes of unchanged files come from here).
  struct File {
    std::string repo, path, hash;
    std::uint64_t size = 0;
  };
  std::vector<File> hashed;
};

// A run's datum table as kept on _pipelines (pipeline_records.cc has the
// format), and read back: JSON lines when `json_lines` (what earlier
// versions wrote). `what` names the table in errors (kCorruption).
std::string datums_text(const std::vector<DatumRecord>& d);
std::vector<DatumRecord> parse_datums_text(std::string_view text, bool json_lines, const std::string& what);

// Shared by the engine's files:
inline bool ended(PipelineRunState s) { return s != PipelineRunState::kQueued && s != PipelineRunState::kRunning; }
inline std::string run_id(const std::string& pipeline, std::uint64_t n) {
  return pipeline + "@" + std::to_string(n);
}
// A whole file ("" when it cannot be read): logs, the cache's journal.
std::string read_file(const std::filesystem::path& p);
// A pipeline's cache journal (pipeline_run.cc): datum key -> its line
// (key, id, outputs, sizes, log, duration_ns, tries); a torn last line is left out.
std::map<std::string, nlohmann::json> read_cache_journal(const std::filesystem::path& cache);
// The pipelines downstream of branch `b` (reading it, directly or not),
// given each pipeline's input branches.
std::set<std::string> downstream(const std::map<std::string, std::vector<std::string>>& inputs, const std::string& b);

class PipelineEngine final : public Pipelines {
 public:
  // Its runs go through `scheduler` (shared with the jobs; scheduler.h).
  PipelineEngine(Client& store, const JobsOptions& opts, std::filesystem::path work, ImageStore& images,
                 Runtime& runtime, RunScheduler& scheduler, std::optional<Error> disabled);
  ~PipelineEngine() override;  // stop()
  // Ends the trigger and the runs in progress (recorded as killed: the
  // next engine resumes them), and waits until they are recorded.
  void stop();
  // Resumes the runs a stopped or killed engine left, catches up with the
  // commits made meanwhile, and starts the trigger and the scheduler.
  void start();

  Result<PipelineInfo> create_pipeline(std::string_view json_text) override;
  Result<PipelineInfo> update_pipeline(std::string_view json_text, bool reprocess) override;
  Result<PipelineInfo> inspect_pipeline(std::string_view name) override;
  Result<std::vector<PipelineInfo>> list_pipelines() override;
  Result<void> delete_pipeline(std::string_view name) override;
  Result<PipelineInfo> stop_pipeline(std::string_view name) override;
  Result<PipelineInfo> start_pipeline(std::string_view name) override;
  Result<std::vector<PipelineRun>> list_runs(const RunFilter& filter) override;
  Result<PipelineRun> inspect_run(std::string_view run) override;
  Result<PipelineRun> wait_run(std::string_view run, std::chrono::milliseconds wait) override;
  Result<std::vector<DatumInfo>> list_datums(std::string_view run) override;
  Result<PipelineRun> restart_datum(std::string_view pipeline, std::string_view datum) override;
  Result<void> get_logs(const LogFilter& filter, Sink& out) override;
  Result<std::vector<PipelineRun>> flush_commit(std::string_view commit, std::chrono::milliseconds wait) override;
  Result<DatumTrial> run_datum(std::string_view json_text, const DatumTrialOptions& opts) override;

 private:
  // ---- records (pipeline_records.cc) ----
  std::optional<PipelineMeta> load_meta(const std::string& name);
  void save_meta(const PipelineMeta& m);
  std::vector<std::string> pipeline_names();
  std::optional<PipelineRun> read_run(const std::string& pipeline, std::uint64_t n);
  void write_run(const PipelineRun& r);
  std::vector<DatumRecord> read_datums(const std::string& pipeline, std::uint64_t n);
  void write_datums(const std::string& pipeline, std::uint64_t n, const std::vector<DatumRecord>& d);
  void commit_records(const std::string& message);
  void ensure_records_branch();
  std::optional<std::string> read_text(const std::string& path);
  void write_text(const std::string& path, const std::string& text);

  // ---- the scheduler (pipeline_engine.cc) ----
  // Queues a run of `m` on the current heads of its inputs (`trigger`:
  // the commit that caused it, "branch@id"), or `fixed` input commits.
  // `force`: even when a run of the same spec on the same commits is
  // queued or running (restart-datum).
  PipelineRun queue_run(PipelineMeta& m, const std::string& trigger,
                        const std::map<std::string, std::string>& fixed = {}, bool force = false);
  // Starts the trigger and the scheduler once (start(), or the first
  // flush_commit of an engine made with pipelines_on_commit false).
  void start_threads();
  // The queue as the scheduler sees it (one run per pipeline at a time),
  // and one run on a scheduler thread: execute() and its records.
  RunScheduler::Source source();
  void run_one(const PipelineRun& run);
  void catch_up(const std::string& pipeline);
  void mark_downstream_unrunnable(const PipelineRun& failed);
  std::optional<PipelineRun> current_run(const std::string& pipeline, std::uint64_t n);
  std::pair<std::string, std::uint64_t> parse_run_id(std::string_view id);
  void must_run();
  void notice(const std::string& line);
  // Removes `dir` in the background: renamed into <work>/trash at once,
  // deleted by the janitor thread (a run's cache of 1,000 datums took
  // 0.6 s to delete, after its output was committed but before its end
  // was recorded). A server's stop leaves the rest to its next start; a
  // local pachctl's engine finishes before it goes.
  void discard(const std::filesystem::path& dir);
  void janitor();
  // The pipeline named, checked to exist. Throws kNotFound.
  PipelineMeta need(std::string_view name);
  // Pipelines that read branch `b`.
  std::vector<std::string> readers_of(const std::string& b);

  // ---- one run (pipeline_run.cc) ----
  PipelineRun execute(PipelineRun run);
  WorkerSetup worker_setup(const PipelineSpec& spec, const Image& image, const std::filesystem::path& binary,
                           const std::filesystem::path& dir);
  void materialize(const Datum& d, DatumWorker& w, const std::map<std::string, std::string>& commit_of);

  Client& store_;
  const JobsOptions& opts_;
  std::filesystem::path work_;
  ImageStore& images_;
  Runtime& runtime_;
  RunScheduler& scheduler_;
  std::optional<Error> disabled_;

  std::mutex mu_;
  std::condition_variable cv_;  // a run was queued or ended, a datum ended, or stop
  std::deque<PipelineRun> queue_;                  // queued runs, oldest first
  std::map<std::string, PipelineRun> running_;     // pipeline -> its run in progress (live figures)
  // A running run's datums: its table (set by execute(), which removes
  // this before the table goes), and its pending datums as they change.
  struct LiveDatums {
    const std::vector<DatumRecord>* table = nullptr;
    std::map<std::size_t, DatumInfo> pending;  // by index in the table
  };
  std::map<std::string, LiveDatums> live_datums_;  // run id -> its datums
  std::set<std::string> stop_requested_;           // pipelines whose run must end now
  std::map<std::string, std::string> success_input_;  // run id -> its input key, until recorded
  std::map<std::string, std::vector<pid_t>> live_pids_;  // run id -> its containers' first processes
  bool stopping_ = false;
  bool started_ = false;
  std::vector<std::thread> threads_;  // the trigger, the janitor
  bool trash_ = false;                 // discard() put something in the trash
  std::mutex records_mu_;  // one writer of _pipelines at a time; taken before mu_, never inside it
};

}  // namespace pfs::detail::jobs
