// pfs/pipelines.h: pipelines -- Pachyderm 2.x's pipelines on one machine:
// a spec names a container image, a command and inputs (branches cut into
// datums by globs); every new commit of an input branch runs it, only the
// datums whose input changed are processed, and the result is committed to
// the branch named after the pipeline, with the input commits it came from
// (docs/pipelines.md has the whole story).
//
//   auto engine = pfs::open_jobs(*store, {});            // pfs/jobs.h
//   auto& p = (*engine)->pipelines();
//   p.create_pipeline(R"({"pipeline": {"name": "edges"},
//       "transform": {"image": "localhost/edges:1", "cmd": ["/edges"]},
//       "input": {"pfs": {"repo": "images", "glob": "/*"}}})");
//   store->put_file("images", "a.png", src); store->commit("images");
//   auto runs = p.flush_commit("images", std::chrono::minutes(5));
//   // runs[0].state == PipelineRunState::kSuccess; branch "edges" has the output
//
// Words: a *repo* of Pachyderm is a pfs branch. A *run* (Pachyderm's job)
// is one execution of a pipeline on one set of input commits; its id is
// "<pipeline>@<number>". A *datum* is one unit of work of a run: the
// files one glob match (or one combination of matches, for cross) selects.
#pragma once

#include <pfs/export.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pfs/io.h>
#include <pfs/result.h>
#include <pfs/types.h>

namespace pfs {

// One input of a pipeline: a glob over a branch ("pfs"), or a combination
// of inputs: every tuple of one datum from each ("cross"), or the datums of
// each in turn ("union").
struct PipelineInput {
  enum class Kind { kPfs, kCross, kUnion };
  Kind kind = Kind::kPfs;
  // kPfs:
  std::string name;    // the folder under /pfs/ (default: the repo)
  std::string repo;    // the branch it reads
  std::string branch;  // Pachyderm's branch of the repo: "master" (or empty)
  std::string glob;    // "/", "/*", "/*/*", "/**", "/data/*.csv", ...
  // kCross, kUnion: at least one input each.
  std::vector<PipelineInput> inputs;
};

enum class ReprocessSpec {
  kUntilSuccess,  // reuse a datum's output while its input and the spec are unchanged
  kEveryJob,      // process every datum on every run
};

// A pipeline spec: Pachyderm 2.x's JSON (parse_pipeline()).
struct PipelineSpec {
  std::string name;  // pipeline.name; also the branch its output is committed to
  std::string description;
  // transform:
  std::string image;                       // as JobSpec::image (pfs/jobs.h)
  std::vector<std::string> cmd;            // argv, no shell
  std::vector<std::string> stdin_lines;    // fed to cmd's standard input
  std::map<std::string, std::string> env;  // added to the image's environment
  PipelineInput input;
  std::uint32_t parallelism = 1;  // parallelism_spec.constant: containers at once
  std::uint32_t datum_tries = 3;  // tries of a datum before the run fails
  std::chrono::seconds datum_timeout{0};  // 0: the engine's default
  std::chrono::seconds job_timeout{0};    // 0: the engine's default (JobsOptions::run_timeout)
  std::uint64_t memory = 0;  // resource_limits.memory, bytes per container (0: default)
  double cpu = 0;            // resource_limits.cpu, CPUs per container (0: no limit)
  ReprocessSpec reprocess = ReprocessSpec::kUntilSuccess;
};

// Reads and checks a Pachyderm 2.x pipeline spec (JSON). Accepted fields:
// pipeline.name, description, transform.{image, cmd, stdin, env},
// input.{pfs.{repo, branch, glob, name}, cross, union},
// parallelism_spec.constant, datum_tries, datum_timeout and job_timeout
// (durations: "30s", "5m", "1h30m"), resource_limits.{memory, cpu},
// reprocess_spec ("until_success", "every_job"). Errors: kInvalidArgument
// naming the field for anything unknown, missing, mistyped or invalid (a
// bad name, image, glob; two inputs with one name; a pipeline reading its
// own output).
PFS_EXPORT Result<PipelineSpec> parse_pipeline(std::string_view json_text);
// The spec as stored and served: canonical JSON in Pachyderm's shape.
PFS_EXPORT std::string pipeline_json(const PipelineSpec& spec);
// The branches a spec reads (sorted, once each).
PFS_EXPORT std::vector<std::string> pipeline_inputs(const PipelineSpec& spec);

struct PipelineInfo {
  PipelineSpec spec;
  std::string spec_json;        // as stored (pipeline_json)
  std::string version;          // SHA-256 of spec_json, first 16 hex digits
  std::uint64_t spec_number = 1;  // 1, then +1 for each update
  bool stopped = false;           // stop_pipeline: no new runs until start
  std::int64_t created_ns = 0, updated_ns = 0;
  std::string last_run;    // id of its newest run ("" before the first)
  std::string last_state;  // that run's state ("" before the first)
};

enum class PipelineRunState {
  kQueued,      // waiting for a slot (or for the run before it)
  kRunning,
  kSuccess,     // its output is committed (output_commit)
  kFailure,     // a datum failed its tries, a collision, a timeout: see reason
  kKilled,      // the engine stopped (or was killed) while it ran; resumed when it starts
  kUnrunnable,  // an upstream pipeline's run failed: there is no input to run on
};
PFS_EXPORT std::string_view pipeline_run_state_name(PipelineRunState s);  // "queued", ...

// A commit a run read: input branch and commit id.
struct ProvenanceEntry {
  std::string branch;
  std::string commit;
  bool operator==(const ProvenanceEntry&) const = default;
};

struct DatumCounts {
  std::uint64_t total = 0;
  std::uint64_t processed = 0;  // run in a container by this run
  std::uint64_t skipped = 0;    // unchanged since a successful run: its output reused
  std::uint64_t recovered = 0;  // finished by an earlier, unfinished run of the same input: reused
  std::uint64_t failed = 0;
};

struct PipelineRun {
  std::string id;  // "<pipeline>@<number>"
  std::string pipeline;
  std::uint64_t number = 0;
  std::string spec_version;  // PipelineInfo::version it ran with
  PipelineRunState state = PipelineRunState::kQueued;
  std::string reason;  // why it failed, was killed or is unrunnable
  std::string trigger;  // the commit whose arrival queued it (branch@id)
  std::vector<ProvenanceEntry> provenance;  // the input commits it read
  std::string output_commit;                // on success
  std::int64_t queued_ns = 0, started_ns = 0, finished_ns = 0;
  DatumCounts datums;
  TreeStats output;
};

enum class DatumState { kPending, kRunning, kProcessed, kSkipped, kRecovered, kFailed };
PFS_EXPORT std::string_view datum_state_name(DatumState s);  // "pending", ...

// A file of a datum: which input, and its path in that input's branch.
struct DatumFile {
  std::string input;  // the input's name (its folder under /pfs/)
  std::string path;
};

struct DatumInfo {
  std::string id;  // 32 hex digits: a hash of its inputs' names, paths and contents
  DatumState state = DatumState::kPending;
  std::vector<DatumFile> files;
  std::uint32_t tries = 0;
  std::int64_t duration_ns = 0;  // of the last try
  std::string error;             // why the last try failed
  std::vector<std::string> outputs;  // the files it wrote under /pfs/out
};

struct RunFilter {
  std::string pipeline;  // only this pipeline's runs
  std::string commit;    // only the runs that read this commit (directly or via upstream pipelines)
};

struct LogFilter {
  std::string pipeline;
  std::string run;    // "<pipeline>@<n>"
  std::string datum;  // a datum id (with run or pipeline)
  bool follow = false;  // keep writing as the run goes on, until it ends
};

// What run_datum() did: the local development loop.
struct DatumTrial {
  DatumInfo datum;     // the datum it ran (state processed or failed)
  std::string logs;    // the container's stdout and stderr
  std::vector<FileInfo> outputs;  // what it wrote under /pfs/out
};

struct DatumTrialOptions {
  std::string datum;  // a datum id, or a path of it; empty: the first datum
  // Where to copy the outputs (absent or empty directory); empty: nowhere.
  std::string output_dir;
};

class PFS_EXPORT Pipelines {
 public:
  virtual ~Pipelines() = default;

  // Checks the spec (parse_pipeline), that its name is free (no pipeline
  // and no branch of that name, unless the branch is an earlier output of
  // it) and that it closes no cycle, and stores it; the pipeline then runs
  // on its inputs' current heads and every new commit. Errors:
  // kInvalidArgument (the spec; a cycle, naming it), kAlreadyExists.
  virtual Result<PipelineInfo> create_pipeline(std::string_view json_text) = 0;
  // Replaces a pipeline's spec. Datums are reprocessed when what they
  // compute changed (image, cmd, stdin, env, input), or all with
  // `reprocess`. Errors: as create_pipeline, kNotFound.
  virtual Result<PipelineInfo> update_pipeline(std::string_view json_text, bool reprocess = false) = 0;
  virtual Result<PipelineInfo> inspect_pipeline(std::string_view name) = 0;
  virtual Result<std::vector<PipelineInfo>> list_pipelines() = 0;  // sorted by name
  // Deletes the pipeline, its runs' records, logs and cached datums; its
  // output branch (and its commits) stays. Refuses while another pipeline
  // reads its output (kConflict). A run in progress is stopped.
  virtual Result<void> delete_pipeline(std::string_view name) = 0;
  // Stops starting runs (a run in progress ends as killed, keeping every
  // datum it finished); start_pipeline resumes: it runs the commits that
  // arrived meanwhile, reusing those datums.
  virtual Result<PipelineInfo> stop_pipeline(std::string_view name) = 0;
  virtual Result<PipelineInfo> start_pipeline(std::string_view name) = 0;

  // Runs, newest first. Errors: kNotFound (the pipeline or commit).
  virtual Result<std::vector<PipelineRun>> list_runs(const RunFilter& filter = {}) = 0;
  virtual Result<PipelineRun> inspect_run(std::string_view run) = 0;
  // Waits until the run ended or `wait` passed; returns it as it is.
  virtual Result<PipelineRun> wait_run(std::string_view run, std::chrono::milliseconds wait) = 0;
  // The datums of a run (sorted by id).
  virtual Result<std::vector<DatumInfo>> list_datums(std::string_view run) = 0;
  // Forgets the reusable output of a datum of a pipeline (its id or a
  // unique prefix, as list_datums shows) and queues a run on the
  // pipeline's newest inputs that processes it again (every other datum as
  // usual). Returns that run. Errors: kNotFound (pipeline, or no such datum
  // in any of its runs), kInvalidArgument (an ambiguous prefix).
  virtual Result<PipelineRun> restart_datum(std::string_view pipeline, std::string_view datum) = 0;
  // Container output (stdout and stderr) of a pipeline's runs, of one run,
  // or of one datum; each line prefixed with the run and datum when several
  // are shown. With follow, writes more as it comes until the run ends.
  virtual Result<void> get_logs(const LogFilter& filter, Sink& out) = 0;
  // Waits until every run that reads `commit` (a commit id or a branch's
  // head), directly or through upstream pipelines, has ended (or `wait`
  // passed: kBusy), and returns them, upstream first.
  virtual Result<std::vector<PipelineRun>> flush_commit(std::string_view commit,
                                                        std::chrono::milliseconds wait) = 0;
  // The local development loop: runs one datum of `json_text` (a spec that
  // need not be created) on its inputs' heads, in its container, and
  // commits nothing.
  virtual Result<DatumTrial> run_datum(std::string_view json_text,
                                       const DatumTrialOptions& opts = {}) = 0;
};

}  // namespace pfs
