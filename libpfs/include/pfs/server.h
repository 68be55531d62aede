// pfs/server.h: serves one store over HTTP/1.1 (docs/http.md has the API).
// `pachctl serve` is this class with its options on the command line.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <pfs/client.h>
#include <pfs/result.h>

namespace pfs {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                 // 0: any free port (see Server::port())
  // When not empty, every request but GET /health must carry
  // "Authorization: Bearer <token>" (401 otherwise).
  std::string token;
  // Connections served at once; each keeps a thread while it is open, so a
  // long transfer never holds up another client's requests.
  std::size_t threads = 64;
  // Largest accepted request body in bytes (413 above it); 0: no limit.
  std::uint64_t max_upload = 0;
  // One line per request (UTC time, client, method, target, status, bytes,
  // duration); none when empty.
  std::function<void(std::string_view line)> log;
};

class Server {
 public:
  // Binds to options.host:options.port and serves `store`, which the server
  // owns. Errors: kInvalidArgument (bad host), kBusy (address in use),
  // kPermissionDenied (a privileged port).
  static Result<std::unique_ptr<Server>> create(std::unique_ptr<Client> store,
                                                ServerOptions options);
  virtual ~Server() = default;
  // The port it listens on (the chosen one when options.port was 0).
  virtual int port() const = 0;
  // Serves until stop(); then waits for the requests in progress to finish.
  virtual Result<void> run() = 0;
  // Stops accepting connections and makes run() return once the requests
  // in progress are done. Safe from any thread (not from a signal handler).
  virtual void stop() = 0;
};

// The HTTP status of an error code (404 for kNotFound, ...), and back.
int http_status(ErrorCode code);

}  // namespace pfs
