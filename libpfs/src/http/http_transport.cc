// http_transport.cc: one request of the remote client on libcurl: the curl
// handle and its options, the callbacks that stream the bodies and collect
// the headers and progress, and the {"error", "code"} of an answer that is
// not 2xx turned back into the same pfs::Error a local store returns, so
// pachctl prints the same message and exits the same way.
#include "http_transport.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <functional>
#include <span>

#include <fmt/format.h>

#include <pfs/server.h>  // code_of_http_status



namespace pfs::detail::remote {
namespace {


// One request's state, shared with libcurl's callbacks.
struct Call {
  Source* upload = nullptr;       // the body, read as libcurl asks
  std::optional<Error> upload_error;
  Sink* download = nullptr;       // where a 2xx body goes (else into `body`)
  std::optional<Error> download_error;
  std::string body;               // a non-file response body
  long status = 0;
  CURL* curl = nullptr;
  std::vector<std::pair<std::string, std::string>> headers;
  const std::function<void(const Progress&)>* progress = nullptr;
  std::chrono::steady_clock::time_point last_progress{};
};

std::size_t on_read(char* buf, std::size_t size, std::size_t n, void* p) {
  auto* call = static_cast<Call*>(p);
  auto r = call->upload->read(std::span<char>(buf, size * n));
  if (!r) {
    call->upload_error = r.error();
    return CURL_READFUNC_ABORT;
  }
  return *r;
}

std::size_t on_write(char* data, std::size_t size, std::size_t n, void* p) {
  auto* call = static_cast<Call*>(p);
  std::size_t len = size * n;
  if (call->status == 0) curl_easy_getinfo(call->curl, CURLINFO_RESPONSE_CODE, &call->status);
  if (call->download && call->status >= 200 && call->status < 300) {
    auto r = call->download->write(std::span<const char>(data, len));
    if (!r) {
      call->download_error = r.error();
      return 0;  // aborts the transfer
    }
    return len;
  }
  call->body.append(data, len);
  return len;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* p) {
  auto* call = static_cast<Call*>(p);
  std::string_view line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string key(line.substr(0, colon));
    for (auto& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
    call->headers.emplace_back(std::move(key), std::string(v));
  }
  return size * n;
}

int on_progress(void* p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  auto* call = static_cast<Call*>(p);
  if (!call->progress || !*call->progress) return 0;
  auto now = std::chrono::steady_clock::now();
  if (now - call->last_progress < std::chrono::milliseconds(100)) return 0;
  call->last_progress = now;
  Progress pr;
  pr.upload = call->upload != nullptr;
  pr.done = static_cast<std::uint64_t>(pr.upload ? ulnow : dlnow);
  pr.total = static_cast<std::uint64_t>(pr.upload ? ultotal : dltotal);
  (*call->progress)(pr);
  return 0;
}

}  // namespace

std::string encode(std::string_view s, bool keep_slash) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/'))
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::string named(std::string_view name, std::string_view what) {
  if (name.empty()) failf(ErrorCode::kInvalidArgument, "the {} name is empty; give the name of a {}", what, what);
  return encode(name, false);
}

std::optional<std::uint64_t> size_left(Source& src) {
  struct stat st {};
  if (src.fd() >= 0 && ::fstat(src.fd(), &st) == 0 && S_ISREG(st.st_mode)) {
    off_t pos = ::lseek(src.fd(), 0, SEEK_CUR);
    if (pos >= 0 && pos <= st.st_size) return static_cast<std::uint64_t>(st.st_size - pos);
  }
  return std::nullopt;
}

Transport::~Transport() {
  for (CURL* h : idle_) curl_easy_cleanup(h);
}

Resp Transport::request(const Req& rq, const std::vector<long>& also_ok) {
  CURL* h = take_handle();
  struct Back {
    Transport* t;
    CURL* h;
    ~Back() { t->give_back(h); }
  } back{this, h};
  Call call;
  call.curl = h;
  call.upload = rq.upload;
  call.download = rq.download;
  if (rq.progress) call.progress = &opts_.progress;
  std::string url = base_ + rq.target;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq.method == "GET" ? nullptr : rq.method.c_str());
  curl_easy_setopt(h, CURLOPT_NOBODY, rq.method == "HEAD" ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &call);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &call);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, opts_.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  // Send "a/../b" as it is, for the server to refuse, rather than as "b".
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &call);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, rq.progress && opts_.progress ? 0L : 1L);
  struct curl_slist* hdrs = nullptr;
  if (!opts_.token.empty()) hdrs = curl_slist_append(hdrs, ("Authorization: Bearer " + opts_.token).c_str());
  if (rq.upload) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &call);
    if (rq.upload_size)
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(*rq.upload_size));
    else
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(-1));
  } else {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 0L);
    if (rq.method == "POST") {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    } else {
      curl_easy_setopt(h, CURLOPT_HTTPGET, rq.method == "GET" ? 1L : 0L);
      if (rq.method != "GET") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq.method.c_str());
    }
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  CURLcode rc = curl_easy_perform(h);
  if (call.progress && *call.progress) {
    Progress end;
    end.upload = rq.upload != nullptr;
    end.finished = true;
    (*call.progress)(end);
  }
  curl_slist_free_all(hdrs);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  if (call.upload_error) throw Fail{*call.upload_error};
  if (call.download_error) throw Fail{*call.download_error};
  if (rc != CURLE_OK)
    failf(ErrorCode::kIo, "the request to {} failed: {}", base_, curl_easy_strerror(rc));
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &call.status);
  Resp r{call.status, std::move(call.body), std::move(call.headers)};
  bool ok = r.status >= 200 && r.status < 300;
  for (long s : also_ok) ok = ok || r.status == s;
  if (!ok) throw Fail{error_of(r)};
  return r;
}

Error Transport::error_of(const Resp& r) const {
  // The code the body names, else the status's (server.h: one table).
  Error e{code_of_http_status(static_cast<int>(r.status)),
          fmt::format("the server at {} answered HTTP {} without saying why (see its log)", base_, r.status)};
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    e.message = j["error"].get<std::string>();
    if (auto c = code_from_name(j.value("code", ""))) e.code = *c;
  } else if (r.status == 401) {
    e.code = ErrorCode::kPermissionDenied;
    e.message = "the server needs a token (--token-file or PFS_TOKEN)";
  }
  return e;
}

json Transport::parse(const std::string& body) const {
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded())
    failf(ErrorCode::kIo, "the server at {} sent a malformed answer (not JSON)", base_);
  return j;
}

CURL* Transport::take_handle() {
  {
    std::lock_guard lk(mu_);
    if (!idle_.empty()) {
      CURL* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  CURL* h = new_curl_handle();
  if (!h) fail(ErrorCode::kInternal, "cannot start an HTTP request: curl_easy_init failed (out of memory?)");
  return h;
}

void Transport::give_back(CURL* h) {
  std::lock_guard lk(mu_);
  idle_.push_back(h);  // keeps its connection for the next request
}

}  // namespace pfs::detail::remote
