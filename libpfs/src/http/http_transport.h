// http_transport.h: the remote client's requests (http_client.cc,
// http_client_files.cc) on libcurl: a pool of curl handles, one request at a
// time per handle, bodies streamed from a Source and into a Sink, and an
// answer that is not 2xx turned back into the pfs::Error the server meant
// (its {"error", "code"} body, else the status: http_status.cc).
#pragma once

#include "curl_lazy.h"  // libcurl, loaded on first use

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <pfs/io.h>
#include <pfs/json.h>
#include <pfs/remote.h>
#include <pfs/result.h>

#include "fail.h"

namespace pfs::detail::remote {

using json = nlohmann::json;

// Percent-encodes everything but unreserved characters (and '/' in paths).
std::string encode(std::string_view s, bool keep_slash);

// A query string built up one parameter at a time.
class Query {
 public:
  Query& add(std::string_view key, std::string_view value) {
    out_ += out_.empty() ? '?' : '&';
    out_ += encode(key, false);
    out_ += '=';
    out_ += encode(value, false);
    return *this;
  }
  Query& ref(const Ref& r, std::string_view prefix = "") {
    switch (r.kind) {
      case Ref::Kind::kBranch:
        return add(std::string(prefix) + "branch", r.name);
      case Ref::Kind::kCommit:
        return add(std::string(prefix) + "commit", r.name);
      case Ref::Kind::kAuto:
        return add(prefix.empty() ? "ref" : prefix.substr(0, prefix.size() - 1), r.name);
    }
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

// A route followed by a path in the store ("/file/" + "a/b.csv"), encoded.
inline std::string file_target(std::string_view route, std::string_view path) {
  return std::string(route) + encode(path, true);
}

// A name in a route's last segment: never empty (that would be another
// route), encoded. `what` says what it names ("branch", "commit").
std::string named(std::string_view name, std::string_view what);

// The bytes a Source has left when it is a regular file (sent with a
// Content-Length); otherwise unknown (sent chunked).
std::optional<std::uint64_t> size_left(Source& src);

// A JSON answer as the type a Client call returns; kIo when it does not fit.
template <class T>
T as(const json& j) {
  try {
    return j.get<T>();
  } catch (const json::exception& e) {
    failf(ErrorCode::kIo, "the server sent an answer this client cannot read ({}); "
                          "are the server and the client of the same pfs version?",
          e.what());
  }
}

struct Req {
  Req(std::string m, std::string t) : method(std::move(m)), target(std::move(t)) {}
  std::string method;
  std::string target;  // path and query, already encoded
  Source* upload = nullptr;
  std::optional<std::uint64_t> upload_size;
  Sink* download = nullptr;  // where a 2xx body goes (else into Resp::body)
  bool progress = false;     // report it to RemoteOptions::progress
};

struct Resp {
  long status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string header(std::string_view key) const {
    for (const auto& [k, v] : headers)
      if (k == key) return v;
    return {};
  }
};

// The connection to one server. Thread-safe: each request takes a curl
// handle of its own from the pool (and gives it back, with its connection
// kept alive, for the next request).
class Transport {
 public:
  Transport(std::string base, RemoteOptions opts) : base_(std::move(base)), opts_(std::move(opts)) {}
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Sends a request; a non-2xx answer (other than those in `also_ok`)
  // becomes its pfs::Error (thrown), as does a failed transfer (kIo) or a
  // failing upload Source or download Sink (their own error).
  Resp request(const Req& rq, const std::vector<long>& also_ok = {});

  // The error an answer carries: the code its body names, else its status's.
  Error error_of(const Resp& r) const;

  json get_json(const std::string& target) { return parse(request({"GET", target}).body); }
  json post_json(const std::string& target) { return parse(request({"POST", target}).body); }
  // A body as JSON; kIo when it is not JSON.
  json parse(const std::string& body) const;

  // "http://host:port" as connect() was given it, without a trailing '/'.
  const std::string& base() const { return base_; }

 private:
  CURL* take_handle();
  void give_back(CURL* h);

  std::string base_;
  RemoteOptions opts_;
  std::mutex mu_;
  std::vector<CURL*> idle_;
};

}  // namespace pfs::detail::remote
