// container_http.cc: ContainerHttp: libcurl, with an open-socket callback
// that makes each socket inside the container's network namespace. A
// socket keeps the namespace it was made in, so the thread steps in for
// the socket() call only and straight back out (setns affects the calling
// thread alone).
#include "container_http.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "fail.h"
#include "fsutil.h"
#include "curl_lazy.h"


namespace pfs::detail::jobs {

namespace {

// The host's network namespace, to come back to.
int host_net() {
  static int fd = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  return fd;
}

// Makes a socket in the namespace `ns`, leaving the thread where it was.
int socket_in(int ns, int family, int type, int protocol) {
  int host = host_net();
  if (host < 0 || ::setns(ns, CLONE_NEWNET) != 0) return -1;
  int s = ::socket(family, type | SOCK_CLOEXEC, protocol);
  int err = errno;
  // A thread left inside a container's namespace would send the server's
  // own traffic there: better to stop at once.
  if (::setns(host, CLONE_NEWNET) != 0) std::abort();
  errno = err;
  return s;
}

curl_socket_t open_socket(void* ns, curlsocktype, struct curl_sockaddr* a) {
  int s = socket_in(*static_cast<int*>(ns), a->family, a->socktype, a->protocol);
  return s < 0 ? CURL_SOCKET_BAD : s;
}

struct Body {
  FileHandle* file;
  std::uint64_t offset = 0;
};

size_t read_body(char* buf, size_t size, size_t n, void* p) {
  auto* b = static_cast<Body*>(p);
  auto r = b->file->read_at(b->offset, std::span<char>(buf, size * n));
  if (!r) return CURL_READFUNC_ABORT;
  b->offset += *r;
  return *r;
}

int seek_body(void* p, curl_off_t offset, int origin) {
  auto* b = static_cast<Body*>(p);
  if (origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
  b->offset = static_cast<std::uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

struct Out {
  void* curl;
  int fd;
  std::uint64_t max;
  Answer* ans;
  bool checked = false, is_ok = false;
};

size_t write_answer(char* data, size_t size, size_t n, void* p) {
  auto* o = static_cast<Out*>(p);
  std::size_t len = size * n;
  if (!o->checked) {
    long status = 0;
    curl_easy_getinfo(o->curl, CURLINFO_RESPONSE_CODE, &status);
    o->is_ok = status >= 200 && status < 300;
    o->checked = true;
  }
  if (!o->is_ok) {  // keep the start of an error's body for the message
    if (o->ans->error.size() < 300) o->ans->error.append(data, std::min<std::size_t>(len, 300 - o->ans->error.size()));
    return len;
  }
  if (o->ans->bytes + len > o->max) {
    o->ans->too_big = true;
    return 0;  // ends the transfer
  }
  const char* q = data;
  std::size_t left = len;
  while (left > 0) {
    ssize_t w = ::write(o->fd, q, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      o->ans->error = fmt::format("cannot keep the answer: {}", std::strerror(errno));
      return 0;
    }
    q += w;
    left -= static_cast<std::size_t>(w);
  }
  o->ans->bytes += len;
  return len;
}

}  // namespace

std::string url_path(const std::string& path) {
  std::string out;
  std::size_t i = 0;
  out += '/';
  for (unsigned char c : path) {
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '.' || c == '_' || c == '~' || c == '/';
    if (keep) out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
    i++;
  }
  return out;
}

ContainerHttp::ContainerHttp(int net_fd) : net_fd_(net_fd) {
  curl_ = new_curl_handle();
  if (!curl_) fail(ErrorCode::kInternal, "libcurl could not make a handle");
}

ContainerHttp::~ContainerHttp() { curl_easy_cleanup(curl_); }

Answer ContainerHttp::perform(int out_fd, std::uint64_t max_bytes, std::chrono::milliseconds timeout) {
  Answer ans;
  if (::ftruncate(out_fd, 0) != 0 || ::lseek(out_fd, 0, SEEK_SET) != 0) {
    ans.error = fmt::format("cannot reset the output file: {}", std::strerror(errno));
    return ans;
  }
  Out out{curl_, out_fd, max_bytes, &ans};
  curl_easy_setopt(curl_, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(curl_, CURLOPT_OPENSOCKETDATA, &net_fd_);
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl_, CURLOPT_PROXY, "");  // never through a proxy of the environment
  curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  // Large pieces: a map job moves its whole input and output through here.
  curl_easy_setopt(curl_, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl_easy_setopt(curl_, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, write_answer);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &out);
  CURLcode rc = curl_easy_perform(curl_);
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &ans.status);
  if (rc != CURLE_OK && !ans.too_big) {
    if (ans.error.empty()) ans.error = curl_easy_strerror(rc);
    if (rc != CURLE_WRITE_ERROR) ans.status = 0;
  }
  return ans;
}

Answer ContainerHttp::post(const std::string& path, FileHandle& body, std::uint64_t size, int out_fd,
                           std::uint64_t max_bytes, std::chrono::milliseconds timeout) {
  Body b{&body};
  std::string url = "http://127.0.0.1:80" + url_path(path);
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl_, CURLOPT_POST, 1L);
  curl_easy_setopt(curl_, CURLOPT_MIMEPOST, static_cast<curl_mime*>(nullptr));
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, static_cast<char*>(nullptr));
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(size));
  curl_easy_setopt(curl_, CURLOPT_READFUNCTION, read_body);
  curl_easy_setopt(curl_, CURLOPT_READDATA, &b);
  curl_easy_setopt(curl_, CURLOPT_SEEKFUNCTION, seek_body);
  curl_easy_setopt(curl_, CURLOPT_SEEKDATA, &b);
  Answer a = perform(out_fd, max_bytes, timeout);
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
  curl_slist_free_all(headers);
  return a;
}

Answer ContainerHttp::post_multipart(const std::string& path, std::vector<Part>& parts, int out_fd,
                                     std::uint64_t max_bytes, std::chrono::milliseconds timeout) {
  std::string url = "http://127.0.0.1:80" + url_path(path);
  curl_mime* mime = curl_mime_init(curl_);
  std::vector<std::unique_ptr<Body>> bodies;
  for (auto& p : parts) {
    curl_mimepart* mp = curl_mime_addpart(mime);
    bodies.push_back(std::make_unique<Body>(Body{p.file.get()}));
    curl_mime_name(mp, p.name.c_str());
    curl_mime_filename(mp, p.name.c_str());
    curl_mime_type(mp, "application/octet-stream");
    curl_mime_data_cb(mp, static_cast<curl_off_t>(p.size), read_body, seek_body, nullptr, bodies.back().get());
  }
  struct curl_slist* headers = curl_slist_append(nullptr, "Expect:");
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl_, CURLOPT_MIMEPOST, mime);
  Answer a = perform(out_fd, max_bytes, timeout);
  curl_easy_setopt(curl_, CURLOPT_MIMEPOST, static_cast<curl_mime*>(nullptr));
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
  curl_mime_free(mime);
  curl_slist_free_all(headers);
  return a;
}

bool ContainerHttp::listening() {
  UniqueFd s(socket_in(net_fd_, AF_INET, SOCK_STREAM, 0));
  if (!s) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(80);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

}  // namespace pfs::detail::jobs
