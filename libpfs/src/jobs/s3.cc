// s3.cc: S3Client: ListObjectsV2 and GET over libcurl, which signs each
// request (AWS SigV4). libcurl 7.88 signs the path and query exactly as
// given, so the query is built sorted and RFC 3986-encoded, keys encoded
// segment by segment, and x-amz-content-sha256 is sent explicitly.
#include "s3.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "fail.h"
#include "fsutil.h"
#include "curl_lazy.h"


namespace pfs::detail::jobs {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) i++;
  return s.substr(i);
}

std::string xml_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); i++) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    auto semi = s.find(';', i);
    std::string ent = semi == std::string::npos ? "" : s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (!ent.empty() && ent[0] == '#') {
      unsigned long cp = ent.size() > 1 && ent[1] == 'x' ? std::strtoul(ent.c_str() + 2, nullptr, 16)
                                                         : std::strtoul(ent.c_str() + 1, nullptr, 10);
      if (cp < 0x80) out += static_cast<char>(cp);
      else if (cp < 0x800) out += static_cast<char>(0xC0 | (cp >> 6)), out += static_cast<char>(0x80 | (cp & 0x3F));
      else if (cp < 0x10000)
        out += static_cast<char>(0xE0 | (cp >> 12)), out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
            out += static_cast<char>(0x80 | (cp & 0x3F));
      else
        out += static_cast<char>(0xF0 | (cp >> 18)), out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi == std::string::npos ? s.size() : semi;
  }
  return out;
}

// The text of each <tag>...</tag> in `xml` (inside `within` elements when given).
std::vector<std::string> elements(const std::string& xml, const std::string& tag) {
  std::vector<std::string> out;
  std::string open = "<" + tag + ">", close = "</" + tag + ">";
  for (std::size_t pos = 0; (pos = xml.find(open, pos)) != std::string::npos;) {
    auto end = xml.find(close, pos);
    if (end == std::string::npos) break;
    out.push_back(xml.substr(pos + open.size(), end - pos - open.size()));
    pos = end + close.size();
  }
  return out;
}

struct StringOut final : Sink {
  std::string* s;
  explicit StringOut(std::string* p) : s(p) {}
  Result<void> write(std::span<const char> d) override {
    if (s->size() + d.size() > (64u << 20)) return Error{ErrorCode::kIo, "the S3 answer is too large"};
    s->append(d.data(), d.size());
    return {};
  }
};

struct Out {
  Sink* sink;
  std::string* error_body;
  void* curl;
  bool ok = false, checked = false;
  std::optional<Error> failed;
};

size_t on_data(char* p, size_t size, size_t n, void* v) {
  auto* o = static_cast<Out*>(v);
  if (!o->checked) {
    long status = 0;
    curl_easy_getinfo(o->curl, CURLINFO_RESPONSE_CODE, &status);
    o->ok = status >= 200 && status < 300;
    o->checked = true;
  }
  if (!o->ok) {
    if (o->error_body->size() < 4096) o->error_body->append(p, std::min<std::size_t>(size * n, 4096));
    return size * n;
  }
  auto r = o->sink->write(std::span<const char>(p, size * n));
  if (!r) {
    o->failed = r.error();
    return 0;
  }
  return size * n;
}

void setup(void* curl, const S3Config& c, curl_slist*& headers, const std::vector<std::string>& extra) {
  std::string sig = "aws:amz:" + c.region + ":s3";
  curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sig.c_str());
  std::string userpwd = c.access_key + ":" + c.secret_key;
  curl_easy_setopt(curl, CURLOPT_USERPWD, userpwd.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  for (const auto& h : extra) headers = curl_slist_append(headers, h.c_str());
  if (!c.fixed_date.empty()) headers = curl_slist_append(headers, ("x-amz-date: " + c.fixed_date).c_str());
  if (!c.session_token.empty())
    headers = curl_slist_append(headers, ("x-amz-security-token: " + c.session_token).c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
}

// The code of an S3 error answer, for the message (never the credentials).
std::string s3_error(long status, const std::string& body) {
  auto code = elements(body, "Code"), msg = elements(body, "Message");
  return fmt::format("HTTP {}{}{}{}{}", status, code.empty() ? "" : " ", code.empty() ? "" : code[0],
                     msg.empty() ? "" : ": ", msg.empty() ? "" : xml_decode(msg[0]));
}

}  // namespace

std::string s3_encode(const std::string& s, bool keep_slash) {
  std::string out;
  for (unsigned char ch : s) {
    bool keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                ch == '.' || ch == '_' || ch == '~' || (keep_slash && ch == '/');
    if (keep) out += static_cast<char>(ch);
    else out += fmt::format("%{:02X}", ch);
  }
  return out;
}

ListPage parse_list_page(const std::string& xml) {
  ListPage p;
  for (const auto& c : elements(xml, "Contents")) {
    auto k = elements(c, "Key"), sz = elements(c, "Size");
    if (k.empty()) continue;
    p.objects.push_back({xml_decode(k[0]), sz.empty() ? 0 : std::strtoull(sz[0].c_str(), nullptr, 10)});
  }
  auto t = elements(xml, "IsTruncated");
  p.truncated = !t.empty() && t[0] == "true";
  auto n = elements(xml, "NextContinuationToken");
  if (!n.empty()) p.next_token = xml_decode(n[0]);
  return p;
}

S3Config s3_config(const std::string& credentials_file) {
  S3Config c;
  c.access_key = env("AWS_ACCESS_KEY_ID");
  c.secret_key = env("AWS_SECRET_ACCESS_KEY");
  c.session_token = env("AWS_SESSION_TOKEN");
  std::string region = env("AWS_REGION").empty() ? env("AWS_DEFAULT_REGION") : env("AWS_REGION");
  c.endpoint = env("AWS_ENDPOINT_URL_S3").empty() ? env("AWS_ENDPOINT_URL") : env("AWS_ENDPOINT_URL_S3");
  if ((c.access_key.empty() || c.secret_key.empty()) && !credentials_file.empty()) {
    std::ifstream in(credentials_file);
    if (!in) failf(ErrorCode::kNotFound, "cannot read the S3 credentials file {}", credentials_file);
    std::string line, section = "default";
    while (std::getline(in, line)) {
      line = trim(line);
      if (line.empty() || line[0] == '#' || line[0] == ';') continue;
      if (line.front() == '[') {
        section = trim(line.substr(1, line.find(']') - 1));
        continue;
      }
      if (section != "default") continue;
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string k = trim(line.substr(0, eq)), v = trim(line.substr(eq + 1));
      for (char& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (k == "aws_access_key_id") c.access_key = v;
      else if (k == "aws_secret_access_key") c.secret_key = v;
      else if (k == "aws_session_token") c.session_token = v;
      else if (k == "region" || k == "aws_region") region = region.empty() ? v : region;
      else if (k == "endpoint_url" || k == "aws_endpoint_url") c.endpoint = c.endpoint.empty() ? v : c.endpoint;
    }
  }
  if (c.access_key.empty() || c.secret_key.empty())
    fail(ErrorCode::kUnsupported,
         "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY where the jobs run (the "
         "server's environment), or give pachctl serve --s3-credentials FILE");
  if (!region.empty()) c.region = region;
  if (c.endpoint.empty()) c.endpoint = "https://s3." + c.region + ".amazonaws.com";
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  return c;
}

S3Client::S3Client(S3Config c) : c_(std::move(c)) {
  curl_ = new_curl_handle();
  if (!curl_) fail(ErrorCode::kInternal, "libcurl could not make a handle");
}

S3Client::~S3Client() { curl_easy_cleanup(curl_); }

long S3Client::request(const std::string& url, Sink& out, std::string& error_body) {
  curl_easy_reset(curl_);
  curl_slist* headers = nullptr;
  setup(curl_, c_, headers, {"x-amz-content-sha256: UNSIGNED-PAYLOAD"});
  Out o{&out, &error_body, curl_, false, false, std::nullopt};
  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &o);
  CURLcode rc = curl_easy_perform(curl_);
  curl_slist_free_all(headers);
  if (o.failed) throw Fail{*o.failed};
  if (rc != CURLE_OK)
    failf(ErrorCode::kIo, "S3 endpoint {}: {}", c_.endpoint, curl_easy_strerror(rc));
  long status = 0;
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

namespace {
[[noreturn]] void s3_fail(long status, const std::string& body, const std::string& what) {
  ErrorCode code = status == 404 ? ErrorCode::kNotFound
                   : (status == 401 || status == 403) ? ErrorCode::kPermissionDenied
                                                       : ErrorCode::kIo;
  failf(code, "{}: {}", what, s3_error(status, body));
}
}  // namespace

std::vector<S3Object> S3Client::list(const std::string& bucket, const std::string& prefix) {
  std::vector<S3Object> all;
  std::string token;
  for (int page = 0; page < 100000; page++) {
    // Sorted and encoded: libcurl signs the query as it is written.
    std::string q;
    if (!token.empty()) q += "continuation-token=" + s3_encode(token, false) + "&";
    q += "list-type=2&prefix=" + s3_encode(prefix, false);
    std::string body, err;
    StringOut sink(&body);
    long st = request(c_.endpoint + "/" + s3_encode(bucket, false) + "?" + q, sink, err);
    if (st < 200 || st >= 300) s3_fail(st, err, fmt::format("listing s3://{}/{}", bucket, prefix));
    ListPage p = parse_list_page(body);
    for (auto& o : p.objects)
      if (!o.key.empty() && o.key.back() != '/') all.push_back(std::move(o));  // "folders" are not objects
    if (!p.truncated || p.next_token.empty()) break;
    token = p.next_token;
  }
  std::sort(all.begin(), all.end(), [](const S3Object& a, const S3Object& b) { return a.key < b.key; });
  return all;
}

void S3Client::get(const std::string& bucket, const std::string& key, Sink& out) {
  std::string err;
  long st = request(c_.endpoint + "/" + s3_encode(bucket, false) + "/" + s3_encode(key, true), out, err);
  if (st < 200 || st >= 300) s3_fail(st, err, fmt::format("reading s3://{}/{}", bucket, key));
}

std::string S3Client::authorization_for(const S3Config& c, const std::string& url,
                                        const std::vector<std::string>& extra) {
  // A listener that keeps the request's Authorization header and answers 200.
  UniqueFd srv(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(srv.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(srv.get(), 1) != 0 ||
      ::getsockname(srv.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    fail_errno(errno, "listen on 127.0.0.1");
  int port = ntohs(a.sin_port);
  std::string head;
  std::thread t([&] {
    UniqueFd conn(::accept(srv.get(), nullptr, nullptr));
    if (!conn) return;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(conn.get(), buf, sizeof buf);
      if (n <= 0) break;
      head.append(buf, static_cast<std::size_t>(n));
    }
    const char* ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    [[maybe_unused]] auto w = ::write(conn.get(), ok, std::strlen(ok));
  });
  void* curl = new_curl_handle();
  curl_slist* headers = nullptr;
  setup(curl, c, headers, extra);
  // Whatever host the URL names, connect to the listener.
  auto host_start = url.find("://") + 3;
  std::string host = url.substr(host_start, url.find('/', host_start) - host_start);
  std::string to = fmt::format("{}:80:127.0.0.1:{}", host, port);
  curl_slist* connect_to = curl_slist_append(nullptr, to.c_str());
  curl_easy_setopt(curl, CURLOPT_CONNECT_TO, connect_to);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  std::string sink;
  StringOut so(&sink);
  std::string err;
  Out o{&so, &err, curl, false, false, std::nullopt};
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &o);
  curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  curl_slist_free_all(headers);
  curl_slist_free_all(connect_to);
  t.join();
  std::string lower = head;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto pos = lower.find("\r\nauthorization:");
  if (pos == std::string::npos) return {};
  pos += 16;
  return trim(head.substr(pos, head.find("\r\n", pos) - pos));
}

}  // namespace pfs::detail::jobs
