// container_http.h: HTTP requests to the web server inside a job's
// container, over libcurl, with sockets made in the container's network
// namespace (so 127.0.0.1:80 is the container's own loopback).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <pfs/client.h>
#include <pfs/io.h>

namespace pfs::detail::jobs {

// One part of a multipart/form-data body: a file of the input.
struct Part {
  std::string name;                    // the file's path
  std::unique_ptr<FileHandle> file;    // its bytes
  std::uint64_t size = 0;
};

struct Answer {
  long status = 0;           // the HTTP status; 0 when no answer came
  std::string error;         // what went wrong when status is 0, or the start of a non-2xx body
  std::uint64_t bytes = 0;   // of the body written
  bool too_big = false;      // the body passed max_bytes
  bool ok() const { return status >= 200 && status < 300 && !too_big; }
};

// Not thread-safe: one per worker thread; keeps its connection alive
// between requests.
class ContainerHttp {
 public:
  explicit ContainerHttp(int net_fd);
  ~ContainerHttp();
  ContainerHttp(const ContainerHttp&) = delete;
  ContainerHttp& operator=(const ContainerHttp&) = delete;

  // POSTs `size` bytes from `body` to http://127.0.0.1:80<path> and writes a
  // 2xx answer's body to `out_fd` (from its offset 0, truncating first).
  Answer post(const std::string& path, FileHandle& body, std::uint64_t size, int out_fd,
              std::uint64_t max_bytes, std::chrono::milliseconds timeout);
  // The same with a multipart/form-data body of `parts`.
  Answer post_multipart(const std::string& path, std::vector<Part>& parts, int out_fd,
                        std::uint64_t max_bytes, std::chrono::milliseconds timeout);
  // True when something accepts connections on port 80.
  bool listening();

 private:
  Answer perform(int out_fd, std::uint64_t max_bytes, std::chrono::milliseconds timeout);
  void* curl_;
  int net_fd_;
};

// "/a%20b/c.txt" for "a b/c.txt": each segment percent-encoded (RFC 3986
// unreserved characters kept).
std::string url_path(const std::string& path);

}  // namespace pfs::detail::jobs
