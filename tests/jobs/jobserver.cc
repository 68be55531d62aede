// jobserver.cc: the web server inside the test images of jobs: a static
// program (no libraries in the image) that speaks just enough HTTP/1.1 on
// port 80 to play each part the job tests need:
//
//   upper     map: answers the body upper-cased
//   count     reduce: answers "<words>\n", the words of every part of a
//             multipart/form-data body (or of the raw body)
//   crash     exits with status 3 at the first request
//   nolisten  exits with status 2 at once, never listening
//   hang      reads the request and never answers
//   fail500   answers 500
//   garbage   answers bytes that are not HTTP and closes
//   oom       allocates (and touches) memory without end
//   flood     writes 64 MiB to stdout, then works as upper
//   probe     answers what it can do: "host-loopback:<reachable|unreachable>
//             root:<writable|read-only> tmp:<writable|read-only>"; the
//             request path names the port on the host to try
//   echo-path answers the request's path (as received, still encoded)
//   slow      waits 2 s, then works as upper
//   cat       answers the body as it is
//
// "jobserver upper -" and "jobserver cat -" transform stdin to stdout
// instead (bench/jobs.sh: the same program in a loop on the host).
//
// One process per connection (fork), keep-alive, Content-Length bodies only.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

std::string mode;

bool read_exact(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t w = write(fd, s.data() + off, s.size() - off);
    if (w <= 0) return;
    off += static_cast<size_t>(w);
  }
}

void answer(int fd, int status, const std::string& body) {
  const char* reason = status == 200 ? "OK" : status == 500 ? "Internal Server Error" : "Bad Request";
  char head[256];
  snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nContent-Type: application/octet-stream\r\n\r\n",
           status, reason, body.size());
  write_all(fd, head + body);
}

std::string header_value(const std::string& head, const char* name) {
  std::string lower;
  for (char c : head) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string key = std::string("\r\n") + name + ":";
  auto pos = lower.find(key);
  if (pos == std::string::npos) return {};
  pos += key.size();
  auto end = head.find("\r\n", pos);
  std::string v = head.substr(pos, end - pos);
  while (!v.empty() && v.front() == ' ') v.erase(0, 1);
  return v;
}

size_t count_words(const std::string& s) {
  size_t n = 0;
  bool in = false;
  for (unsigned char c : s) {
    bool space = std::isspace(c);
    if (!space && !in) n++;
    in = !space;
  }
  return n;
}

// The words of all parts of a multipart body (or of the raw body).
size_t words_of(const std::string& body, const std::string& content_type) {
  auto b = content_type.find("boundary=");
  if (content_type.find("multipart/") == std::string::npos || b == std::string::npos) return count_words(body);
  std::string boundary = "--" + content_type.substr(b + 9);
  size_t n = 0, pos = body.find(boundary);
  while (pos != std::string::npos) {
    size_t start = body.find("\r\n\r\n", pos);
    if (start == std::string::npos) break;
    start += 4;
    size_t end = body.find("\r\n" + boundary, start);
    if (end == std::string::npos) break;
    n += count_words(body.substr(start, end - start));
    pos = end + 2;
  }
  return n;
}

std::string probe(const std::string& path) {
  int port = atoi(path.c_str() + 1);
  std::string out = "host-loopback:";
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Port 80 here is this server: any other port is the host's, if reachable.
  out += connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? "reachable" : "unreachable";
  close(s);
  int f = open("/pfs-probe", O_WRONLY | O_CREAT, 0644);
  out += std::string(" root:") + (f >= 0 ? "writable" : "read-only");
  if (f >= 0) close(f);
  f = open("/tmp/pfs-probe", O_WRONLY | O_CREAT, 0644);
  out += std::string(" tmp:") + (f >= 0 ? "writable" : "read-only");
  if (f >= 0) close(f);
  return out + "\n";
}

void serve(int fd) {
  std::string buf;
  char tmp[65536];
  for (;;) {
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t r = read(fd, tmp, sizeof tmp);
      if (r <= 0) return;
      buf.append(tmp, static_cast<size_t>(r));
    }
    std::string head = buf.substr(0, end + 2);
    buf.erase(0, end + 4);
    std::string line = head.substr(0, head.find("\r\n"));
    auto sp1 = line.find(' '), sp2 = line.rfind(' ');
    std::string path = sp1 == std::string::npos ? "/" : line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t len = strtoull(header_value(head, "content-length").c_str(), nullptr, 10);
    std::string full = buf.substr(0, std::min(len, buf.size()));
    buf.erase(0, full.size());
    if (full.size() < len) {  // the rest of the body is still on the wire
      std::string rest(len - full.size(), '\0');
      if (!read_exact(fd, rest.data(), rest.size())) return;
      full += rest;
    }
    if (mode == "crash") _exit(3);
    if (mode == "slow") sleep(2);
    if (mode == "hang") {
      for (;;) pause();
    }
    if (mode == "garbage") {
      write_all(fd, "this is not HTTP\r\n\r\n");
      return;
    }
    if (mode == "oom") {
      for (;;) {
        char* p = static_cast<char*>(malloc(1 << 20));
        if (p) memset(p, 1, 1 << 20);
      }
    }
    if (mode == "fail500") {
      answer(fd, 500, "something broke inside\n");
      continue;
    }
    if (mode == "count") {
      answer(fd, 200, std::to_string(words_of(full, header_value(head, "content-type"))) + "\n");
      continue;
    }
    if (mode == "probe") {
      answer(fd, 200, probe(path));
      continue;
    }
    if (mode == "echo-path") {
      answer(fd, 200, path + "\n");
      continue;
    }
    if (mode == "cat") {
      answer(fd, 200, full);
      continue;
    }
    // upper (and flood, slow)
    for (char& c : full) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    answer(fd, 200, full);
  }
}

}  // namespace

int main(int argc, char** argv) {
  mode = argc > 1 ? argv[1] : "upper";
  if (argc > 2 && std::string(argv[2]) == "-") {  // a filter: stdin to stdout
    std::string data;
    char buf[65536];
    for (ssize_t n; (n = read(0, buf, sizeof buf)) > 0;) data.append(buf, static_cast<size_t>(n));
    if (mode == "upper")
      for (char& c : data) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    write_all(1, data);
    return 0;
  }
  if (mode == "nolisten") {
    fprintf(stderr, "jobserver: told not to listen\n");
    return 2;
  }
  signal(SIGCHLD, SIG_IGN);  // children are reaped by the kernel
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(80);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(s, 128) != 0) {
    perror("jobserver: bind port 80");
    return 1;
  }
  fprintf(stderr, "jobserver: %s mode, listening on port 80\n", mode.c_str());
  if (mode == "flood") {
    std::string chunk(1 << 20, 'x');
    chunk.back() = '\n';
    for (int i = 0; i < 64; i++) write_all(1, chunk);
    mode = "upper";
  }
  for (;;) {
    int c = accept(s, nullptr, nullptr);
    if (c < 0) continue;
    pid_t pid = fork();
    if (pid == 0) {
      close(s);
      serve(c);
      _exit(0);
    }
    close(c);
  }
}
