// pfs/server.h: serves one store over HTTP/1.1 (docs/http.md has the API).
// `pachctl serve` is this class with its options on the command line.
#pragma once

#include <pfs/export.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <pfs/client.h>
#include <pfs/jobs.h>
#include <pfs/result.h>

namespace pfs {

// The shortest token a server accepts (ServerOptions::token).
inline constexpr std::size_t kMinTokenLength = 16;

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                 // 0: any free port (see Server::port())
  // When not empty, every request but GET /health must carry
  // "Authorization: Bearer <token>" (401 otherwise), checked before any
  // body is read. At least kMinTokenLength characters.
  std::string token;
  // A host that is not a loopback address needs a token, unless this is
  // set (a trusted network): Server::create refuses otherwise.
  bool insecure = false;
  // Worker threads: the requests that may block on the store (uploads,
  // commits, listings, large downloads) run on them, at most this many at
  // once; the others wait their turn. Idle connections take none.
  std::size_t threads = 64;
  // Network threads (accepting, reading headers, small reads); 0: one per
  // CPU, at most 8.
  std::size_t io_threads = 0;
  // Open connections at most, in all and from one client address; one over
  // a cap is answered 503 at once and closed. The total is also held under
  // the process's limit of open files.
  std::size_t max_connections = 16384;
  std::size_t max_per_client = 256;
  // The request line and headers must arrive within header_timeout of the
  // connection (or of the request's first byte): else 408 and closed. A
  // kept-alive connection idle for idle_timeout is closed. A body or a
  // response that makes no progress for io_timeout is cut off.
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds idle_timeout{15000};
  std::chrono::milliseconds io_timeout{60000};
  // Largest accepted request body in bytes (413 above it); 0: no limit.
  std::uint64_t max_upload = 0;
  // One line per request (UTC time, client, method, target, status, bytes,
  // duration) and the server's notices; none when empty. Called from any
  // of the server's threads.
  std::function<void(std::string_view line)> log;
};

class PFS_EXPORT Server {
 public:
  // Binds to options.host:options.port and serves `store`, which the server
  // owns, and with `jobs` (an engine over that store, open_jobs()) the job
  // routes; without, they answer 501. Errors: kInvalidArgument (bad host; a non-loopback host without a
  // token or `insecure`; a token shorter than kMinTokenLength), kBusy
  // (address in use), kPermissionDenied (a privileged port).
  static Result<std::unique_ptr<Server>> create(std::unique_ptr<Client> store,
                                                ServerOptions options,
                                                std::unique_ptr<Jobs> jobs = nullptr);
  virtual ~Server() = default;
  // The port it listens on (the chosen one when options.port was 0).
  virtual int port() const = 0;
  // Serves until stop(); then waits for the requests in progress to finish.
  virtual Result<void> run() = 0;
  // Stops accepting connections and makes run() return once the requests
  // in progress are done. Safe from any thread (not from a signal handler).
  virtual void stop() = 0;
};

// The HTTP status of an error code (404 for kNotFound, ...), and back: the
// code of a status (any other 4xx: kInvalidArgument; 401: kPermissionDenied;
// 5xx without a code in the body: kIo). One table, used by the server and by
// the remote client.
PFS_EXPORT int http_status(ErrorCode code);
PFS_EXPORT ErrorCode code_of_http_status(int status);

}  // namespace pfs
