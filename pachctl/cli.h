// cli.h: what every pachctl command shares: global options, the client,
// error reporting and output helpers. Commands stay thin: parse, call one
// Client method, print.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <pfs/client.h>
#include <pfs/jobs.h>
#include <pfs/remote.h>
#include <pfs/json.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace pachctl {

struct Globals {
  std::string store;       // --store / PFS_STORE
  std::string address;     // --address / PFS_ADDRESS: a server instead of a local store
  std::string token_file;  // --token-file: the server's bearer token (else PFS_TOKEN)
  bool json = false;       // --json
};

class Context {
 public:
  Globals globals;
  // The client for the chosen store; on failure prints the error and
  // returns nullptr (the command then returns status()).
  pfs::Client* client();
  // The jobs of that store: a server's (--address), or an engine here over
  // the local store (it runs jobs only as root, and only while no server
  // runs this store's jobs). nullptr after printing the error.
  pfs::Jobs* jobs();
  // The other end of clone, push or pull: a server's URL or a store's
  // directory (which must hold a store). nullptr after printing the error.
  std::unique_ptr<pfs::Client> open_end(const std::string& where);
  // The bearer token for servers (--token-file, else $PFS_TOKEN); false
  // after printing the error.
  bool token(std::string& out);
  // Prints "pachctl: <message>" on stderr and remembers the exit status.
  int fail(const pfs::Error& e);
  int fail(pfs::ErrorCode code, const std::string& message) {
    return fail(pfs::Error{code, message});
  }
  int status() const { return status_; }
  // The store directory: --store, $PFS_STORE, or the default.
  std::string store_dir() const;
  // The server's URL (--address or $PFS_ADDRESS), or "" for a local store.
  std::string address() const;
  void print_json(const nlohmann::json& j) const;

 private:
  std::unique_ptr<pfs::Client> client_;
  std::unique_ptr<pfs::Jobs> jobs_;  // after client_: destroyed first, it may use it
  int status_ = 0;
};

// A command's run function: returns the process exit status.
using Runner = std::function<int()>;
void add_runner(CLI::App* sub, Runner run);
int run_selected(CLI::App& app);

// The setup functions, one per command group; each binds its options to
// CLI11 and registers a runner.
void setup_store_commands(CLI::App& app, Context& ctx);
void setup_file_commands(CLI::App& app, Context& ctx);
void setup_commit_commands(CLI::App& app, Context& ctx);
void setup_branch_commands(CLI::App& app, Context& ctx);
void setup_serve_command(CLI::App& app, Context& ctx);
void setup_wait_commands(CLI::App& app, Context& ctx);
void setup_job_commands(CLI::App& app, Context& ctx);
void setup_pipeline_commands(CLI::App& app, Context& ctx);

// Pipelines (cmd_pipelines.cc): what list-run, inspect-run and get-logs do
// for pipelines.
int list_pipeline_runs(const std::string& pipeline, const std::string& commit, Context& ctx);
int inspect_pipeline_run(const std::string& id, double wait, Context& ctx);
int pipeline_logs(const pfs::LogFilter& f, Context& ctx);

// Jobs (cmd_jobs.cc): waits until every run of `commit` has ended, showing
// progress on a terminal, then prints how each ended (on stderr); the exit
// status is 0 when all succeeded, 5 otherwise.
// With `only`, only those jobs' runs count.
int wait_for_runs(pfs::Jobs& j, const std::string& commit, Context& ctx,
                  const std::vector<std::string>& only = {});
void print_runs(const std::vector<pfs::RunInfo>& runs, Context& ctx);

// list-commit --follow: a cursor for "now" (taken before the history is
// printed, so nothing falls between), then the commits after it as they
// come, until the process is stopped.
pfs::Result<std::string> follow_cursor(pfs::Client& c, const std::string& branch);
int follow_from(pfs::Client& c, const std::string& branch, std::string cursor, Context& ctx);

void setup_replication_commands(CLI::App& app, Context& ctx);

// "http://..." or "https://...": a server, not a directory.
bool is_url(std::string_view where);

// A progress bar on stderr for long transfers (shown only when stderr is a
// terminal: the caller checks): "  up 312.0 MiB / 1.0 GiB  31%  154.2 MiB/s
// ETA 0:04". Cleared when destroyed.
class ProgressBar {
 public:
  // `label` replaces "up"/"down".
  void update(const pfs::Progress& p, std::string_view label = {});
  ~ProgressBar();

 private:
  bool started_ = false, shown_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

// The help footer of a command: examples and its exit statuses, as in its
// man page (tests/cli/docs_test.sh checks they agree).
std::string footer(std::initializer_list<std::string_view> examples, std::string_view exit_status);
// The first line of a token file, without trailing white space, in *token;
// false when the file cannot be read.
bool read_token_file(const std::string& path, std::string& token);
// The error code for an errno from a local file operation.
pfs::ErrorCode errno_code(int err);
// "WHAT: <strerror> (<what to do>)" for an errno (pfs::errno_advice).
std::string os_error(std::string_view what, int err);
// Reads a whole spec or descriptor file into `text` ("-": standard input);
// false after ctx.fail (kNotFound, saying why) when it cannot be read.
bool read_input_file(const std::string& file, std::string& text, Context& ctx);

// ---- output helpers
std::string human_size(std::uint64_t bytes);
std::string short_time(std::int64_t ns);  // "2026-11-24 19:02:28" (UTC)
// Prints rows as aligned columns; the first row is the header.
void print_table(const std::vector<std::vector<std::string>>& rows);

// "-c COMMIT | -b BRANCH" as a Ref (branch master when neither is given).
pfs::Ref read_ref(const std::string& commit, const std::string& branch);

}  // namespace pachctl
