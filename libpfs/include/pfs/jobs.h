// pfs/jobs.h: jobs -- containerized analytics that run on commits (the job
// API of Pachyderm v0.8; docs/jobs.md has the whole story).
//
//   auto jobs = pfs::open_jobs(*store, {});            // the engine, here
//   (*jobs)->create_job("master", "upper", R"({"type": "map", "input": "data",
//                        "image": "localhost/upper:1", "command": ["/upper"]})");
//   auto c = (*jobs)->commit_and_run("master", "");      // returns at once
//   auto run = (*jobs)->wait_run(c->id, "upper", 60000); // success, failure...
//   (*jobs)->get_output(c->id, "upper", "a.txt", sink, {});
//
// Words: a *job* is a definition, stored as the file `job/<name>` of a
// branch, so it is versioned with the data and a commit holds exactly the
// jobs it runs. A *run* is one execution of one job on one commit. A
// *datum* is one unit of work of a run (for map: one input file).
//
// Where things are kept: every run's record, log and output live on the
// store's branch `_jobs` (runs/<commit>/<job>.json, logs/..., out/...), so
// they survive restarts, are checked by fsck and travel with clone and
// push. A run's output becomes visible all at once when it succeeds, and
// only then; it never changes afterwards.
//
// A Jobs object from open_jobs() runs containers on this machine (runc,
// images from podman or docker or an OCI archive: docs/jobs.md); one from
// connect_jobs() (pfs/remote.h) asks a server that does. Thread safe.
#pragma once

#include <pfs/export.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pfs/client.h>
#include <pfs/io.h>
#include <pfs/pipelines.h>
#include <pfs/result.h>
#include <pfs/types.h>

namespace pfs {

enum class JobType { kMap, kReduce };

// A job descriptor (v0.8's JSON; parse_job() reads and checks it).
struct JobSpec {
  std::string name;
  JobType type = JobType::kMap;
  // What it reads: a directory of the store at the commit being run
  // ("data", "logs/2026"; "" or "/" is the root), "job/<other>" (the
  // output of another job at the same commit), or "s3://bucket/prefix"
  // (every object under the prefix).
  std::string input;
  // A Docker/OCI image reference ("localhost/upper:1", "debian@sha256:..."),
  // looked up in the local image store of the container engine; or
  // "oci-archive:/path/image.tar" / "docker-archive:/path/image.tar".
  std::string image;
  std::vector<std::string> command;  // starts the web server (port 80)
  // Optional (0: the engine's default, JobsOptions):
  std::uint32_t parallel = 0;     // map: requests at once
  std::uint32_t timeout = 0;      // seconds a request may take
  std::uint64_t limit = 0;        // map: at most this many input files
  std::uint64_t cpu_shares = 0;   // relative CPU weight (1024 is one share)
  std::uint64_t memory = 0;       // bytes the container may use
};

// Reads and checks a job descriptor: `type`, `input`, `image`, `command`
// (a JSON array, or a string split as a shell would), and optionally
// `parallel`, `timeout`, `limit`, `cpu-shares` and `memory` (bytes, or a
// string such as "256m"). Errors: kInvalidArgument naming the field for
// anything missing, mistyped, unknown or invalid (a bad name or image
// reference, an input that climbs out of the tree, an unknown type).
PFS_EXPORT Result<JobSpec> parse_job(std::string_view name, std::string_view json_text);
// The descriptor as stored and served: canonical JSON, every field.
PFS_EXPORT std::string job_json(const JobSpec& spec);

enum class RunState {
  kQueued,   // waiting for a slot or for the jobs it reads
  kRunning,
  kSuccess,  // its output is readable
  kFailure,  // see `reason`; nothing of it is readable as output
  kSkipped,  // not run because a job it reads did not succeed
};
PFS_EXPORT std::string_view run_state_name(RunState s);  // "queued", ...

struct RunInfo {
  std::string commit;  // the data commit it runs on
  std::string branch;  // that commit's branch
  std::string job;
  std::string job_version;  // sha256 of the job's descriptor, first 16 hex digits
  JobSpec spec;             // the descriptor it ran with
  RunState state = RunState::kQueued;
  std::string reason;   // why it failed or was skipped (empty otherwise)
  std::uint32_t attempt = 1;  // 1, then +1 for each rerun
  std::int64_t queued_ns = 0, started_ns = 0, finished_ns = 0;  // 0: not yet
  std::uint64_t datums_total = 0, datums_done = 0, datums_failed = 0;
  TreeStats output;  // the output's files and bytes (on success)
};

struct OutputOptions {
  // How long a read waits for a run that is queued or running, at most.
  std::chrono::milliseconds wait{60000};
  bool recursive = false;  // list_output: every file below, not one level
};

struct RerunOptions {
  std::string job;  // only this job (and the jobs that read it); empty: all
};

class PFS_EXPORT Jobs {
 public:
  virtual ~Jobs() = default;

  // ---- definitions: the file job/<name> of a branch ------------------------

  // Checks the descriptor (parse_job) and that its input would not close
  // a cycle among the branch's jobs, then stores it as job/<name> on
  // `branch`. Errors: kInvalidArgument (naming the field), kNotFound
  // (branch); nothing is stored on an error.
  virtual Result<JobSpec> create_job(std::string_view branch, std::string_view name,
                                     std::string_view json_text) = 0;
  // A job of a branch's working state or of a commit. Errors: kNotFound,
  // kInvalidArgument (the stored file is not a valid descriptor).
  virtual Result<JobSpec> inspect_job(const Ref& ref, std::string_view name) = 0;
  // Every job (sorted by name); files under job/ that are not valid
  // descriptors are left out of the list (inspect_job says why).
  virtual Result<std::vector<JobSpec>> list_jobs(const Ref& ref) = 0;
  // Errors: kNotFound.
  virtual Result<void> delete_job(std::string_view branch, std::string_view name) = 0;

  // ---- runs -----------------------------------------------------------------

  // Commits `branch` and queues a run of every job of the new commit, in
  // dependency order (a job whose input is job/X after X; independent jobs
  // at the same time, bounded). Returns the commit at once; the runs go on.
  virtual Result<CommitInfo> commit_and_run(std::string_view branch,
                                            std::string_view message) = 0;
  // Runs again the runs of `commit` that did not succeed (failed,
  // interrupted, skipped; one job and those that read it with opts.job),
  // or, for a commit made without running, runs its jobs for the first
  // time. Successful runs are kept: an output never changes. Returns the
  // runs queued. Errors: kNotFound (commit, job), kConflict (one of them
  // is queued or running).
  virtual Result<std::vector<RunInfo>> rerun(std::string_view commit,
                                             const RerunOptions& opts = {}) = 0;
  // The runs of a commit (sorted by job), or of every commit (newest first)
  // when `commit` is empty. Errors: kNotFound (commit).
  virtual Result<std::vector<RunInfo>> list_runs(std::string_view commit) = 0;
  // Errors: kNotFound (the commit, or no run of the job on it).
  virtual Result<RunInfo> inspect_run(std::string_view commit, std::string_view job) = 0;
  // Waits until the run has ended or `wait` passed, and returns it as it is.
  virtual Result<RunInfo> wait_run(std::string_view commit, std::string_view job,
                                   std::chrono::milliseconds wait) = 0;
  // The container's output (stdout and stderr, interleaved as written; at
  // most JobsOptions::max_log_bytes of it) of the run's last attempt.
  virtual Result<void> get_logs(std::string_view commit, std::string_view job, Sink& out) = 0;

  // ---- outputs --------------------------------------------------------------

  // A file of the job's output at `commit`. A run still queued or running
  // is waited for (opts.wait), then exactly that commit's run is served.
  // Errors: kNotFound (no run of the job on the commit, saying whether the
  // commit was made without running; or no such file), kConflict (the run
  // failed or was skipped: the message has its state and reason), kBusy
  // (still running after opts.wait).
  virtual Result<FileInfo> get_output(std::string_view commit, std::string_view job,
                                      std::string_view path, Sink& out,
                                      const OutputOptions& opts = {}) = 0;
  // Lists a directory of the output or the files a glob matches (as
  // Client::list_files). Errors: as get_output.
  virtual Result<std::vector<FileInfo>> list_output(std::string_view commit, std::string_view job,
                                                    std::string_view dir_or_glob,
                                                    const OutputOptions& opts = {}) = 0;

  // ---- pipelines (pfs/pipelines.h) -------------------------------------------
  // The same engine runs Pachyderm 2.x pipelines; valid as long as this object.
  virtual Pipelines& pipelines() = 0;
};

// How the local engine runs containers (defaults suit one machine).
struct JobsOptions {
  // Scratch space: unpacked images, container bundles, outputs being
  // collected. Empty: the folder "jobs" in the store's directory (which
  // the store ignores); best on the store's file system (outputs are then
  // moved in by reflink, not copied).
  std::filesystem::path work_dir;
  // Where images come from: "podman" (its local store), "docker", or
  // "none" (only oci-archive:/docker-archive: references).
  std::string image_engine = "podman";
  std::string runtime = "runc";  // the OCI runtime (a name on PATH or a path)
  std::size_t max_runs = 2;      // runs at once
  std::uint32_t default_parallel = 8;
  std::uint32_t default_timeout = 300;                 // seconds per request
  std::uint64_t default_memory = 512ull << 20;         // bytes per container
  std::uint64_t pids_limit = 256;                      // processes per container
  std::chrono::seconds run_timeout{3600};              // wall clock per run
  std::chrono::seconds start_timeout{30};              // until the server listens
  std::uint64_t max_log_bytes = 8ull << 20;            // kept per run; the rest is counted
  std::uint32_t tries = 3;                             // per request (non-2xx, timeout, reset)
  // S3 inputs: credentials come from the environment (AWS_ACCESS_KEY_ID,
  // AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL),
  // else from this file (AWS's shared-credentials format, profile
  // [default]); never from a job's descriptor.
  std::string s3_credentials_file;
  // Pipelines run on every new commit of their inputs while this engine
  // lives (what a server wants). false, for a short-lived program: they
  // run only when results are asked for (Pipelines::flush_commit), then
  // catch up with every commit made meanwhile.
  bool pipelines_on_commit = true;
  // Notices (a run started, ended, a container could not be removed...).
  std::function<void(std::string_view line)> log;
};

// The engine over `store` (which must outlive it). To run jobs it takes
// the store's job lock (one engine per store at a time) and needs root and
// the OCI runtime; without them it still defines jobs and reads runs, logs
// and outputs, and commit_and_run/rerun fail with the reason (kBusy:
// another process, e.g. a server, runs this store's jobs: send it the
// commit; kUnsupported: not root, or no runtime: says what to install).
// Runs that a previous engine left queued or running (it was killed) are
// marked failed ("interrupted"; `rerun` completes them), and containers it
// left are removed. Errors: those of the store.
PFS_EXPORT Result<std::unique_ptr<Jobs>> open_jobs(Client& store, JobsOptions options = {});

}  // namespace pfs
