// serve: the HTTP server over the local store (docs/http.md).
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cctype>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/core.h>
#include <pfs/server.h>

#include "cli.h"

namespace pachctl {

namespace {

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";
  std::string token_file;
  std::size_t threads = 64;
  std::size_t io_threads = 0;
  std::size_t max_connections = 16384;
  std::size_t max_per_client = 256;
  double header_timeout = 10, idle_timeout = 15, io_timeout = 60;
  std::string max_upload = "0";
  bool insecure = false;
  bool quiet = false;
  // jobs
  std::string image_engine = "podman", runtime = "runc", jobs_dir, s3_credentials;
  std::size_t max_runs = 2;
};

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

// "HOST:PORT", ":PORT" (loopback), "PORT", or "[v6]:PORT".
bool parse_listen(const std::string& s, std::string& host, int& port) {
  std::string h = "127.0.0.1", p = s;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find("]:");
    if (close == std::string::npos) return false;
    h = s.substr(1, close - 1);
    p = s.substr(close + 2);
  } else if (auto colon = s.rfind(':'); colon != std::string::npos) {
    if (colon > 0) h = s.substr(0, colon);
    p = s.substr(colon + 1);
  }
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos)
    return false;
  port = std::stoi(p);
  host = h;
  return port <= 65535;
}

// "0", "100", "10K", "5M", "2G", "1T" (powers of 1024).
bool parse_size(const std::string& s, std::uint64_t& out) {
  if (s.empty()) return false;
  std::size_t digits = s.find_first_not_of("0123456789");
  if (digits == 0 || (digits != std::string::npos && digits + 1 != s.size())) return false;
  std::string num = s.substr(0, digits == std::string::npos ? s.size() : digits);
  if (num.size() > 15) return false;
  std::uint64_t v = std::stoull(num);
  if (digits != std::string::npos) {
    std::string units = "KMGT";
    auto u = units.find(static_cast<char>(std::toupper(static_cast<unsigned char>(s.back()))));
    if (u == std::string::npos) return false;
    v <<= 10 * (u + 1);
  }
  out = v;
  return true;
}

int run_serve(const ServeOptions& o, Context& ctx) {
  if (!ctx.address().empty())
    return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                    "serve serves a local store (--store); drop --address and PFS_ADDRESS");
  pfs::ServerOptions opts;
  if (!parse_listen(o.listen, opts.host, opts.port))
    return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                    fmt::format("--listen {}: use HOST:PORT, :PORT or PORT (e.g. 127.0.0.1:8080)",
                                o.listen));
  if (!parse_size(o.max_upload, opts.max_upload))
    return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                    fmt::format("--max-upload {}: use bytes, or a number with K, M, G or T",
                                o.max_upload));
  if (!o.token_file.empty()) {
    struct stat st{};
    if (::stat(o.token_file.c_str(), &st) != 0 || !read_token_file(o.token_file, opts.token))
      return ctx.fail(pfs::ErrorCode::kNotFound,
                      fmt::format("cannot read the token file {}", o.token_file));
    // A secret that others can read is no secret (ssh refuses such keys too).
    if ((st.st_mode & 077) != 0)
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      fmt::format("the token file {} is readable by others (mode {:03o}); make it "
                                  "private with: chmod 600 {}",
                                  o.token_file, st.st_mode & 0777, o.token_file));
    if (opts.token.empty())
      return ctx.fail(pfs::ErrorCode::kInvalidArgument,
                      fmt::format("the token file {} is empty; put a secret in it", o.token_file));
  }
  opts.threads = o.threads;
  opts.io_threads = o.io_threads;
  opts.max_connections = o.max_connections;
  opts.max_per_client = o.max_per_client;
  opts.header_timeout = millis(o.header_timeout);
  opts.idle_timeout = millis(o.idle_timeout);
  opts.io_timeout = millis(o.io_timeout);
  opts.insecure = o.insecure;
  if (!o.quiet) {
    auto mu = std::make_shared<std::mutex>();
    opts.log = [mu](std::string_view line) {
      std::lock_guard lk(*mu);
      fmt::print(stderr, "{}\n", line);
      std::fflush(stderr);
    };
  }
  // A server reads the same files of commits again and again: keep the
  // small ones (commits never change) in 64 MiB of memory.
  pfs::OpenOptions open_opts;
  open_opts.file_cache_bytes = 64 << 20;
  auto store = pfs::open_store(ctx.store_dir(), open_opts);
  if (!store) return ctx.fail(store.error());
  auto info = (*store)->info();
  if (!info) return ctx.fail(info.error());

  // SIGTERM and SIGINT are taken by a thread of their own (blocked in all
  // others, which inherit this mask): it stops the server, which finishes
  // the requests in progress before run() returns.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that goes away is an error on its socket, not our end

  // The job engine, over the same store (the server owns both). Made after
  // the signal mask: its threads inherit it, so SIGTERM reaches the waiter.
  pfs::JobsOptions jopts;
  jopts.image_engine = o.image_engine;
  jopts.runtime = o.runtime;
  jopts.work_dir = o.jobs_dir;
  jopts.max_runs = o.max_runs;
  jopts.s3_credentials_file = o.s3_credentials;
  jopts.log = [](std::string_view line) {
    fmt::print(stderr, "pachctl serve: jobs: {}\n", line);
    std::fflush(stderr);
  };
  auto jobs = pfs::open_jobs(**store, jopts);
  if (!jobs) return ctx.fail(jobs.error());

  auto server = pfs::Server::create(std::move(*store), opts, std::move(*jobs));
  if (!server) return ctx.fail(server.error());
  pfs::Server* srv = server->get();
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread waiter([srv, sigs, done] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (*done) return;  // woken because the server stopped on its own
    fmt::print(stderr, "pachctl serve: {}: finishing the requests in progress\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv->stop();
  });
  std::string host = opts.host.find(':') != std::string::npos ? "[" + opts.host + "]" : opts.host;
  if (opts.insecure && opts.token.empty())
    fmt::print(stderr,
               "pachctl serve: WARNING: --insecure: anyone who can reach {} can read and change "
               "this store; give a token (--token-file) unless the network is trusted\n",
               host);
  fmt::print(stderr, "pachctl serve: store {} ({}) on http://{}:{}{}\n", info->path, info->backend,
             host, srv->port(), opts.token.empty() ? "" : " (token required)");
  std::fflush(stderr);
  auto r = srv->run();
  // Wake the waiter should the server have stopped on its own.
  *done = true;
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (!r) return ctx.fail(r.error());
  fmt::print(stderr, "pachctl serve: stopped\n");
  return 0;
}

}  // namespace

void setup_serve_command(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<ServeOptions>();
  auto* s = app.add_subcommand("serve", "Serve the store over HTTP (the API of docs/http.md)");
  s->add_option("-l,--listen", o->listen,
                "HOST:PORT to listen on (default 127.0.0.1:8080; :PORT is loopback, port 0 any "
                "free port)")
      ->envname("PFS_LISTEN");
  s->add_option("--token-file", o->token_file,
                "Require \"Authorization: Bearer TOKEN\" with the token in this file")
      ->type_name("FILE");
  s->add_option("--threads", o->threads,
                "Requests that may block on the store served at once (default 64); idle "
                "connections take none")
      ->check(CLI::Range(1, 4096));
  s->add_option("--io-threads", o->io_threads, "Network threads (default 0: one per CPU, at most 8)")
      ->check(CLI::Range(0, 64));
  s->add_option("--max-connections", o->max_connections,
                "Open connections at most (default 16384); more are answered 503")
      ->check(CLI::Range(1, 1000000));
  s->add_option("--max-per-client", o->max_per_client,
                "Open connections at most from one client address (default 256)")
      ->check(CLI::Range(1, 1000000));
  s->add_option("--header-timeout", o->header_timeout,
                "Seconds for a request's line and headers to arrive, in all (default 10); then 408")
      ->check(CLI::Range(0.1, 3600.0));
  s->add_option("--idle-timeout", o->idle_timeout,
                "Seconds a kept-alive connection may wait for its next request (default 15)")
      ->check(CLI::Range(0.1, 3600.0));
  s->add_option("--io-timeout", o->io_timeout,
                "Seconds a body or response may make no progress before it is cut off (default 60)")
      ->check(CLI::Range(0.1, 3600.0));
  s->add_flag("--insecure", o->insecure,
              "Allow listening on a non-loopback address without a token (warned at every start)");
  s->add_option("--max-upload", o->max_upload,
                "Refuse request bodies larger than this (413), e.g. 10G; 0: no limit (default)")
      ->type_name("SIZE");
  s->add_flag("-q,--quiet", o->quiet, "No log line per request");
  s->add_option("--image-engine", o->image_engine,
                "Where jobs' images come from: podman (default), docker, or none (only "
                "oci-archive:/docker-archive: references)")
      ->check(CLI::IsMember({"podman", "docker", "none"}));
  s->add_option("--runtime", o->runtime, "The OCI runtime that runs jobs' containers (default runc)")
      ->type_name("PROGRAM");
  s->add_option("--max-runs", o->max_runs, "Runs of jobs and pipelines at the same time (default 2)")->check(CLI::Range(1, 256));
  s->add_option("--jobs-dir", o->jobs_dir,
                "Scratch space of jobs: unpacked images, bundles, outputs in progress (default: "
                "STORE/jobs)")
      ->type_name("DIR");
  s->add_option("--s3-credentials", o->s3_credentials,
                "S3 inputs of jobs: an AWS credentials file ([default] aws_access_key_id = ..., "
                "aws_secret_access_key = ...), when AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set")
      ->type_name("FILE");
  s->footer(footer({"pachctl serve", "pachctl --store /mnt/btrfs/store serve --listen :9000",
                    "pachctl serve --listen 0.0.0.0:8080 --token-file /etc/pfs/token",
                    "curl -XPOST 'http://127.0.0.1:8080/file/a.txt?branch=master' -T a.txt"},
                   "0 stopped by SIGTERM or SIGINT after the requests in progress finished; "
                   "2 bad option (also: a non-loopback address without a token or --insecure, a "
                   "token file others can read, a token under 16 characters); 3 no store there; 6 the address is in use; 7 a privileged "
                   "port."));
  add_runner(s, [o, &ctx] { return run_serve(*o, ctx); });
}

}  // namespace pachctl
