// store_fixture.cc: the store conformance suite's main and the functions of
// its fixture (store_fixture.h). tests/test_main.h defines main and reads
// the environment (test_backend, test_root), so it is included here, in
// one source of the suite only, and the cases reach it through the fixture.
#include "../test_main.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "store_fixture.h"

std::string backend_name() { return test_backend(); }

bool on_btrfs() { return test_backend() == "btrfs"; }

std::string unique_dir(const std::string& tag) {
  static std::atomic<int> n{0};
  return test_root() + "/" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

namespace {
std::string test_client() {
  const char* c = std::getenv("PFS_TEST_CLIENT");
  return c && *c ? c : "local";
}
}  // namespace

bool remote() { return test_client() == "remote"; }

Connection::Connection(const std::string& dir, const OpenOptions& opts) {
  auto opened = open_store(dir, opts);
  REQUIRE_MESSAGE(opened.ok(), (opened.ok() ? "" : opened.error().message));
  if (!remote()) {
    client_ = std::move(*opened);
    return;
  }
  ServerOptions so;
  so.port = 0;  // any free port: Server::port() says which
  so.threads = 16;
  so.io_threads = 2;
  auto server = Server::create(std::move(*opened), so);
  REQUIRE_MESSAGE(server.ok(), (server.ok() ? "" : server.error().message));
  server_ = std::move(*server);
  thread_ = std::thread([srv = server_.get()] {
    auto r = srv->run();
    if (!r) std::fprintf(stderr, "store_test: server: %s\n", r.error().message.c_str());
  });
  auto c = connect("http://127.0.0.1:" + std::to_string(server_->port()));
  if (!c) {  // a failed REQUIRE throws: a joinable thread must not be left behind
    server_->stop();
    thread_.join();
  }
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  client_ = std::move(*c);
}

Connection::~Connection() {
  client_.reset();
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string new_store(const std::string& tag) {
  std::string path = unique_dir(tag);
  InitOptions opts;
  opts.backend = test_backend() == "portable" ? BackendKind::kPortable : BackendKind::kBtrfs;
  auto info = init_store(path, opts);
  REQUIRE_MESSAGE(info.ok(), (info.ok() ? "" : info.error().message));
  return path;
}

void Store::put(const std::string& path_in_tree, const std::string& data,
                const std::string& branch) {
  auto src = Source::from_string(data);
  auto r = c->put_file(branch, path_in_tree, *src);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
}

std::string Store::get(const Ref& ref, const std::string& p) {
  std::string out;
  auto sink = Sink::to_string(&out);
  auto r = c->get_file(ref, p, *sink);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  return out;
}

std::string Store::commit(const std::string& branch, const std::string& msg) {
  auto r = c->commit(branch, msg);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  return r->id;
}

std::vector<std::string> Store::paths(const Ref& ref, const std::string& dir, bool recursive) {
  ListOptions o;
  o.recursive = recursive;
  auto r = c->list_files(ref, dir, o);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  std::vector<std::string> out;
  for (auto& f : *r) out.push_back(f.path + (f.type == FileInfo::Type::kDirectory ? "/" : ""));
  return out;
}

void Store::check_fsck() {
  auto r = c->fsck();
  REQUIRE(r.ok());
  std::string all;
  for (auto& p : r->problems) all += p + "\n";
  CHECK_MESSAGE(r->problems.empty(), all);
  CHECK(r->leftovers.empty());
}

std::string tree_path(const Store& s, const std::string& kind, const std::string& name) {
  return s.path + "/" + test_backend() + "/" + kind + "/" + name;
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(&out[i], &v, 8);
  }
  return out;
}
