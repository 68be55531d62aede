// engine.h: LocalJobs, the job engine over a Client: job definitions
// (definitions.cc), the queue and the records of runs (engine.cc; the
// threads that run them are the RunScheduler it shares with pipelines),
// and the execution of one run in a container (runner.cc).
//
// What it keeps, all on the store's branch `_jobs` (kJobsBranch):
//   runs/<commit>/<job>.json   the run's record (RunInfo's JSON form)
//   logs/<commit>/<job>.log    the container's output, capped
//   out/<commit>/<job>/...     the output, written in one put_dir when the
//                              run succeeds, never touched after
//   active/<commit>.<job>      present while the run is queued or running:
//                              an engine that starts finds the runs a killed
//                              one left here and marks them interrupted
// The branch is committed after each run ends, so clone and push carry it.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <pfs/jobs.h>

#include "container.h"
#include "fsutil.h"
#include "images.h"
#include "pipeline_engine.h"
#include "scheduler.h"
#include "spec.h"

namespace pfs::detail::jobs {

inline constexpr const char* kJobsBranch = "_jobs";
inline constexpr const char* kJobDir = "job";  // job/<name> in a data branch

// A job of a commit as found there: its descriptor, or why it is not one.
struct FoundJob {
  std::string name;
  std::string text;  // the file's bytes
  std::optional<JobSpec> spec;
  std::string error;  // when spec is empty
};

// The job files of `ref` (sorted by name). Throws.
std::vector<FoundJob> find_jobs(Client& store, const Ref& ref);

// For each job, the jobs it reads (input job/X) that are jobs of the same
// set, and the names of jobs that are on a cycle (with the cycle, "a -> b -> a").
std::map<std::string, std::string> find_cycles(const std::vector<FoundJob>& jobs);

class LocalJobs final : public Jobs {
 public:
  LocalJobs(Client& store, JobsOptions opts);
  ~LocalJobs() override;
  // Takes the lock, recovers what a killed engine left, starts the workers.
  void start();

  Result<JobSpec> create_job(std::string_view branch, std::string_view name,
                             std::string_view json_text) override;
  Result<JobSpec> inspect_job(const Ref& ref, std::string_view name) override;
  Result<std::vector<JobSpec>> list_jobs(const Ref& ref) override;
  Result<void> delete_job(std::string_view branch, std::string_view name) override;

  Result<CommitInfo> commit_and_run(std::string_view branch, std::string_view message) override;
  Result<std::vector<RunInfo>> rerun(std::string_view commit, const RerunOptions& opts) override;
  Result<std::vector<RunInfo>> list_runs(std::string_view commit) override;
  Result<RunInfo> inspect_run(std::string_view commit, std::string_view job) override;
  Result<RunInfo> wait_run(std::string_view commit, std::string_view job,
                           std::chrono::milliseconds wait) override;
  Result<void> get_logs(std::string_view commit, std::string_view job, Sink& out) override;
  Result<FileInfo> get_output(std::string_view commit, std::string_view job, std::string_view path,
                              Sink& out, const OutputOptions& opts) override;
  Result<std::vector<FileInfo>> list_output(std::string_view commit, std::string_view job,
                                            std::string_view dir_or_glob,
                                            const OutputOptions& opts) override;
  Pipelines& pipelines() override { return *pipelines_; }

 private:
  // A run the engine holds (queued or running).
  struct Slot {
    RunInfo info;
    std::vector<std::string> deps;  // jobs of the same commit it reads
    bool running = false;
  };
  using Key = std::pair<std::string, std::string>;  // commit, job

  // Queues runs of `jobs` (all jobs of `commit`, found there) at their
  // next attempt. Caller holds nothing.
  std::vector<RunInfo> queue_runs(const CommitInfo& commit, const std::vector<FoundJob>& all,
                                  const std::set<std::string>& which);
  // The queue as the scheduler sees it (scheduler.h), the oldest runnable
  // slot (under mu_), and one run on a scheduler thread.
  RunScheduler::Source source();
  std::deque<Key>::iterator next_ready(std::string& skip);
  void run_slot(RunInfo run, const std::string& skip);
  // Runs one run (runner.cc); returns its final record.
  RunInfo execute(RunInfo run);
  // Records: the one of a run from the store (nullopt: none), and writing one.
  std::optional<RunInfo> read_record(const std::string& commit, const std::string& job);
  void write_record(const RunInfo& r);
  void finish(RunInfo r);  // writes the final record, the log, commits _jobs
  void recover();          // marks runs a killed engine left as interrupted
  // The run of (commit, job) now: from the engine if it holds it, else the store.
  std::optional<RunInfo> current(const std::string& commit, const std::string& job);
  std::string full_commit(std::string_view commit);
  RunInfo ended_run(const std::string& commit, const std::string& job,
                    std::chrono::milliseconds wait);
  // The run of (commit, job) once it has ended (waiting up to `wait`), when
  // it succeeded; throws kBusy while it runs, kConflict (why) when it did
  // not succeed: what every read of an output checks first.
  RunInfo succeeded_run(const std::string& commit, const std::string& job, std::chrono::milliseconds wait);
  void notice(const std::string& line);
  void must_run();  // throws why runs cannot start here (disabled_)
  void ensure_jobs_branch();

  Client& store_;
  JobsOptions opts_;
  std::filesystem::path work_;
  std::unique_ptr<ImageStore> images_;
  std::unique_ptr<Runtime> runtime_;
  UniqueFd lock_;
  std::optional<Error> disabled_;  // why this engine cannot run jobs

  std::mutex mu_;
  std::condition_variable cv_;       // a slot changed state, or stop
  std::map<Key, Slot> slots_;
  std::deque<Key> order_;            // queued slots, oldest first
  std::map<Key, RunInfo> progress_;  // live figures of running runs
  bool stopping_ = false;
  std::set<pid_t> live_;  // the first processes of running containers (killed at a stop)
  std::mutex commit_mu_;  // one commit of _jobs at a time (they would wait on each other anyway)
  // Runs jobs and pipeline runs (scheduler.h); stopped in the destructor.
  RunScheduler scheduler_;
  // Declared last: destroyed first, while the images and runtime it uses live.
  std::unique_ptr<PipelineEngine> pipelines_;
};

}  // namespace pfs::detail::jobs
