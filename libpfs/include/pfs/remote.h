// pfs/remote.h: a pfs server as a Client, over HTTP (libcurl).
//
//   auto c = pfs::connect("http://127.0.0.1:8080");
//   if (!c) ...; (*c)->put_file("master", "data/x.csv", *src);
//
// Every Client call does what it does on a local store, with the same
// results and error codes; the server's error messages come through as
// they are. A Client from connect() may be used from several threads.
#pragma once

#include <pfs/export.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <pfs/client.h>
#include <pfs/jobs.h>
#include <pfs/result.h>

namespace pfs {

// How far a transfer is: bytes done of total (0 when not known yet).
struct Progress {
  bool upload = false;
  std::uint64_t done = 0;
  std::uint64_t total = 0;
  bool finished = false;  // the last call of a transfer (done or failed)
};

struct RemoteOptions {
  std::string token;  // sent as "Authorization: Bearer <token>" when not empty
  // Called now and then during file transfers (at most ~10 times a second),
  // from the thread that runs the transfer (get_dir's runs on a thread of
  // its own), and once with `finished` at the end of each.
  std::function<void(const Progress&)> progress;
  long connect_timeout_ms = 10000;
};

// A client of the server at `url` ("http://host:port", optionally with a
// path prefix). Checks that the server answers (GET /health). Errors:
// kInvalidArgument (bad URL), kIo (no answer), kPermissionDenied (token).
PFS_EXPORT Result<std::unique_ptr<Client>> connect(std::string_view url, const RemoteOptions& options = {});

// The jobs of the server at `url` (pfs/jobs.h), over its job routes: the
// same calls, results and errors as the engine that runs there. Asks
// nothing until the first call. Errors: kInvalidArgument (bad URL).
PFS_EXPORT Result<std::unique_ptr<Jobs>> connect_jobs(std::string_view url, const RemoteOptions& options = {});

}  // namespace pfs
