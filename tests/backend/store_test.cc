// store_test.cc: the store conformance suite: every Client operation
// through the public API only, on a real store. Each case gets a fresh
// store under $PFS_TEST_ROOT of the backend $PFS_TEST_BACKEND, reached
// through the client $PFS_TEST_CLIENT: "local" (open_store, the default) or
// "remote" (a pfs::Server of that store in this process, on 127.0.0.1 and a
// free port, and pfs::connect to it), so one source checks that both
// clients keep one contract.
#include "../test_main.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <pfs/json.h>
#include <pfs/pfs.h>

namespace fs = std::filesystem;
using namespace pfs;

namespace {

std::string unique_dir(const std::string& tag) {
  static std::atomic<int> n{0};
  return test_root() + "/" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

std::string test_client() {
  const char* c = std::getenv("PFS_TEST_CLIENT");
  return c && *c ? c : "local";
}
bool remote() { return test_client() == "remote"; }

// What a case cannot do through a remote client, said where it is skipped
// (the output shows the reason; the case still counts as run).
#define SKIP_REMOTE(why)                             \
  do {                                               \
    if (remote()) {                                  \
      MESSAGE("skipped with a remote client: " why); \
      return;                                        \
    }                                                \
  } while (false)

// A client of the store in `dir`: the store itself, or a remote client of a
// server of it that lives (and runs on a thread of its own) as long as this.
class Connection {
 public:
  Connection(const std::string& dir, const OpenOptions& opts) {
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
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    client_.reset();
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  Client* get() const { return client_.get(); }
  Client& operator*() const { return *client_; }
  Client* operator->() const { return client_.get(); }

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::unique_ptr<Client> client_;  // reset before the server stops
};

// A new store of the backend under test; returns where it is.
std::string new_store(const std::string& tag) {
  std::string path = unique_dir(tag);
  InitOptions opts;
  opts.backend = test_backend() == "portable" ? BackendKind::kPortable : BackendKind::kBtrfs;
  auto info = init_store(path, opts);
  REQUIRE_MESSAGE(info.ok(), (info.ok() ? "" : info.error().message));
  return path;
}

struct Store {
  std::string path;
  Connection c;
  explicit Store(const std::string& tag = "store") : path(new_store(tag)), c(path, {}) {}
  Client* operator->() { return c.get(); }

  void put(const std::string& path_in_tree, const std::string& data,
           const std::string& branch = "master") {
    auto src = Source::from_string(data);
    auto r = c->put_file(branch, path_in_tree, *src);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  }
  std::string get(const Ref& ref, const std::string& p) {
    std::string out;
    auto sink = Sink::to_string(&out);
    auto r = c->get_file(ref, p, *sink);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    return out;
  }
  std::string commit(const std::string& branch = "master", const std::string& msg = "") {
    auto r = c->commit(branch, msg);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    return r->id;
  }
  std::vector<std::string> paths(const Ref& ref, const std::string& dir = "",
                                 bool recursive = true) {
    ListOptions o;
    o.recursive = recursive;
    auto r = c->list_files(ref, dir, o);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    std::vector<std::string> out;
    for (auto& f : *r) out.push_back(f.path + (f.type == FileInfo::Type::kDirectory ? "/" : ""));
    return out;
  }
  void check_fsck() {
    auto r = c->fsck();
    REQUIRE(r.ok());
    std::string all;
    for (auto& p : r->problems) all += p + "\n";
    CHECK_MESSAGE(r->problems.empty(), all);
    CHECK(r->leftovers.empty());
  }
};

// REQUIRE that a Result is ok, showing its error message when not. The
// call is made once (doctest evaluates a message lazily, so naming `expr`
// in it would repeat the call to report the failure).
#define REQUIRE_OK(expr)                                                                           \
  do {                                                                                             \
    const auto& require_ok_result = (expr);                                                        \
    REQUIRE_MESSAGE(require_ok_result.ok(),                                                        \
                    (require_ok_result.ok() ? std::string() : require_ok_result.error().message)); \
  } while (false)

template <class T>
ErrorCode code(const Result<T>& r) {
  REQUIRE_FALSE(r.ok());
  return r.error().code;
}

Ref M = Ref::branch("master");

bool on_btrfs() { return test_backend() == "btrfs"; }
// Where the backend keeps the tree of a branch or commit ("branches" or
// "commits"): btrfs/<kind>/<name> (a subvolume) or portable/<kind>/<name> (a
// ref file).
std::string tree_path(const Store& s, const std::string& kind, const std::string& name) {
  return s.path + "/" + test_backend() + "/" + kind + "/" + name;
}

}  // namespace

TEST_CASE("init creates an empty master branch; init twice or in a non-empty directory fails") {
  Store s;
  auto info = s->info();
  REQUIRE_OK(info);
  CHECK(info->backend == test_backend());
  CHECK(info->branches == 1);
  CHECK(info->commits == 0);
  auto b = s->inspect_branch("master");
  REQUIRE_OK(b);
  CHECK(b->head.empty());
  CHECK_FALSE(b->dirty);
  CHECK(code(init_store(s.path)) == ErrorCode::kAlreadyExists);
  std::string full = unique_dir("nonempty");
  fs::create_directories(full);
  std::ofstream(full + "/x") << "x";
  CHECK(code(init_store(full)) == ErrorCode::kInvalidArgument);
  CHECK_FALSE(fs::exists(full + "/pfs-store.json"));
}

TEST_CASE("opening a directory that is not a store is a clear not-found") {
  std::string d = unique_dir("plain");
  fs::create_directories(d);
  auto r = open_store(d);
  CHECK(code(r) == ErrorCode::kNotFound);
  CHECK(r.error().message.find("pachctl init") != std::string::npos);
  CHECK(code(open_store(d + "/missing")) == ErrorCode::kNotFound);
}

TEST_CASE("put, get, overwrite and append") {
  Store s;
  s.put("a/b/c.txt", "hello");
  CHECK(s.get(M, "a/b/c.txt") == "hello");
  s.put("a/b/c.txt", "bye");
  CHECK(s.get(M, "a/b/c.txt") == "bye");
  PutOptions app;
  app.append = true;
  auto src = Source::from_string(" world");
  {
    auto _r = s->put_file("master", "a/b/c.txt", *src, app);
    REQUIRE_OK(_r);
  }
  CHECK(s.get(M, "a/b/c.txt") == "bye world");
  auto src2 = Source::from_string("new");
  {
    auto _r = s->put_file("master", "fresh.txt", *src2, app);
    REQUIRE_OK(_r);
  }  // append creates
  CHECK(s.get(M, "fresh.txt") == "new");
  s.put("empty", "");
  CHECK(s.get(M, "empty").empty());
  auto b = s->inspect_branch("master");
  CHECK(b->dirty);
  CHECK(b->stats.files == 3);
  CHECK(b->stats.bytes == 9 + 3);
  s.check_fsck();
}

TEST_CASE("put from a file descriptor streams large data intact") {
  Store s;
  std::string local = unique_dir("local");
  std::string data(5 * 1024 * 1024 + 17, '\0');
  std::mt19937 rng(42);
  for (auto& ch : data) ch = static_cast<char>(rng());
  std::ofstream(local, std::ios::binary) << data;
  int fd = ::open(local.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  auto src = Source::from_fd(fd);
  {
    auto _r = s->put_file("master", "big.bin", *src);
    REQUIRE_OK(_r);
  }
  ::close(fd);
  CHECK(s.get(M, "big.bin") == data);
  std::string part;
  auto sink = Sink::to_string(&part);
  ReadRange range;
  range.offset = 1000;
  range.length = 5000;
  {
    auto _r = s->get_file(M, "big.bin", *sink, range);
    REQUIRE_OK(_r);
  }
  CHECK(part == data.substr(1000, 5000));
  range.offset = data.size() + 1;
  CHECK(code(s->get_file(M, "big.bin", *sink, range)) == ErrorCode::kInvalidArgument);
}

TEST_CASE("invalid paths are rejected and change nothing") {
  Store s;
  s.put("keep.txt", "k");
  auto before = s->inspect_branch("master");
  for (const std::string& bad :
       std::vector<std::string>{"", "/abs", "../x", "a/../../x", "a//b", "./a", ".pfs-staging/x",
                                std::string("nul\0x", 5), "new\nline"}) {
    INFO("path: ", bad);
    auto src = Source::from_string("evil");
    CHECK(code(s->put_file("master", bad, *src)) == ErrorCode::kInvalidArgument);
    CHECK(code(s->delete_file("master", bad)) == ErrorCode::kInvalidArgument);
    std::string out;
    auto sink = Sink::to_string(&out);
    CHECK(code(s->get_file(M, bad, *sink)) == ErrorCode::kInvalidArgument);
  }
  CHECK(s.paths(M) == std::vector<std::string>{"keep.txt"});
  auto after = s->inspect_branch("master");
  CHECK(after->stats.files == before->stats.files);
  CHECK(after->stats.bytes == before->stats.bytes);
  CHECK_FALSE(fs::exists(s.path + "/x"));
  CHECK_FALSE(fs::exists(fs::path(s.path).parent_path() / "x"));
}

TEST_CASE("a file cannot replace a directory, nor pass through a file") {
  Store s;
  s.put("d/f", "1");
  auto src = Source::from_string("x");
  CHECK(code(s->put_file("master", "d", *src)) == ErrorCode::kInvalidArgument);
  auto src2 = Source::from_string("x");
  CHECK(code(s->put_file("master", "d/f/g", *src2)) == ErrorCode::kInvalidArgument);
  CHECK(s.paths(M) == std::vector<std::string>{"d/", "d/f"});
  std::string out;
  auto sink = Sink::to_string(&out);
  CHECK(code(s->get_file(M, "d", *sink)) == ErrorCode::kInvalidArgument);
  CHECK(code(s->get_file(M, "nope", *sink)) == ErrorCode::kNotFound);
  CHECK(code(s->get_file(Ref::branch("nobranch"), "d/f", *sink)) == ErrorCode::kNotFound);
  auto src3 = Source::from_string("x");
  CHECK(code(s->put_file("nobranch", "x", *src3)) == ErrorCode::kNotFound);
  auto src4 = Source::from_string("x");
  CHECK(code(s->put_file("bad name", "x", *src4)) == ErrorCode::kInvalidArgument);
}

TEST_CASE("a symlink planted in a working tree is never followed") {
  if (!on_btrfs()) return;  // portable trees are manifests: no directory to plant it in
  Store s;
  s.put("d/f", "1");
  std::string outside = unique_dir("outside");
  fs::create_directories(outside);
  std::ofstream(outside + "/secret") << "secret";
  fs::create_directory_symlink(outside, s.path + "/btrfs/branches/master/link");
  std::string out;
  auto sink = Sink::to_string(&out);
  auto r = s->get_file(M, "link/secret", *sink);
  CHECK_FALSE(r.ok());
  CHECK(out.empty());
  auto src = Source::from_string("owned");
  CHECK_FALSE(s->put_file("master", "link/planted", *src).ok());
  CHECK_FALSE(fs::exists(outside + "/planted"));
}

TEST_CASE("commits are immutable snapshots with history") {
  Store s;
  s.put("f", "v1");
  std::string c1 = s.commit("master", "first");
  s.put("f", "v2");
  s.put("g", "new");
  CHECK(s.get(Ref::commit(c1), "f") == "v1");
  std::string c2 = s.commit("master", "second");
  s.put("f", "v3");
  CHECK(s.get(Ref::commit(c1), "f") == "v1");
  CHECK(s.get(Ref::commit(c2), "f") == "v2");
  CHECK(s.get(Ref::commit("master"), "f") == "v2");  // a branch name as a commit: its head
  CHECK(s.get(M, "f") == "v3");                      // the working state
  auto log = s->list_commits();
  REQUIRE_OK(log);
  REQUIRE(log->size() == 2);
  CHECK((*log)[0].id == c2);
  CHECK((*log)[0].parent == c1);
  CHECK((*log)[0].message == "second");
  CHECK((*log)[0].stats.files == 2);
  CHECK((*log)[0].stats.bytes == 5);
  CHECK((*log)[1].id == c1);
  CHECK((*log)[1].parent.empty());
  CHECK((*log)[0].time_ns >= (*log)[1].time_ns);
  auto c = s->inspect_commit(c2.substr(0, 6));
  REQUIRE_OK(c);
  CHECK(c->id == c2);
  CHECK(code(s->inspect_commit(c2.substr(0, 3))) == ErrorCode::kNotFound);
  CHECK(code(s->inspect_commit("ffffffffffffffffffffffffffffffff")) == ErrorCode::kNotFound);
  CHECK(code(s->inspect_commit("")) == ErrorCode::kInvalidArgument);
  LogOptions lim;
  lim.limit = 1;
  CHECK(s->list_commits(lim)->size() == 1);
  // The commit's tree is read-only on disk too.
  if (on_btrfs()) CHECK(::access((s.path + "/btrfs/commits/" + c1 + "/f").c_str(), W_OK) != 0);
  s.check_fsck();
}

TEST_CASE("an unchanged branch still commits, and dirty tracks uncommitted writes") {
  Store s;
  std::string c1 = s.commit();
  std::string c2 = s.commit();
  CHECK(c1 != c2);
  CHECK_FALSE(s->inspect_branch("master")->dirty);
  s.put("x", "1");
  CHECK(s->inspect_branch("master")->dirty);
  s.commit();
  CHECK_FALSE(s->inspect_branch("master")->dirty);
}

TEST_CASE("commit events: a waiter wakes with each new commit, in order, and resumes from its cursor") {
  Store s;
  WaitOptions now;
  now.timeout_ms = 0;
  auto start = s->wait_commits(now);
  REQUIRE_OK(start);
  CHECK(start->events.empty());
  CHECK(start->cursor == "master:");
  // A waiter on another thread wakes with the commit made while it waits.
  WaitOptions w;
  w.branch = "master";
  w.since = start->cursor;
  w.timeout_ms = 20000;
  Result<CommitEvents> got = Error{ErrorCode::kInternal, "not run"};
  std::thread waiter([&] { got = s->wait_commits(w); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string c1 = s.commit("master", "one");
  waiter.join();
  REQUIRE_OK(got);
  REQUIRE(got->events.size() == 1);
  CHECK(got->events[0].branch == "master");
  CHECK(got->events[0].commit.id == c1);
  CHECK(got->events[0].commit.message == "one");
  CHECK(got->cursor == "master:" + c1);
  // Missed while not waiting: all of them, oldest first, from the old cursor.
  std::string c2 = s.commit("master", "two");
  std::string c3 = s.commit("master", "three");
  auto since = s->wait_commits(w);
  REQUIRE_OK(since);
  REQUIRE(since->events.size() == 3);
  CHECK(since->events[0].commit.id == c1);
  CHECK(since->events[1].commit.id == c2);
  CHECK(since->events[2].commit.id == c3);
  // Any branch: a new branch reports its head; commits are grouped by branch.
  WaitOptions any;
  any.since = since->cursor;
  any.timeout_ms = 0;
  REQUIRE_OK(s->create_branch("dev", c1));
  std::string d1 = s.commit("dev", "d1");
  auto both = s->wait_commits(any);
  REQUIRE_OK(both);
  REQUIRE(both->events.size() == 1);  // dev was made and committed on between: its head
  CHECK(both->events[0].branch == "dev");
  CHECK(both->events[0].commit.id == d1);
  CHECK(both->cursor == "dev:" + d1 + ",master:" + c3);
  // Nothing new: a timeout is a success with no events and the same cursor.
  any.since = both->cursor;
  any.timeout_ms = 50;
  auto none = s->wait_commits(any);
  REQUIRE_OK(none);
  CHECK(none->events.empty());
  CHECK(none->cursor == both->cursor);
  // A cancelled wait returns early, as a timeout does.
  any.timeout_ms = 60000;
  any.cancelled = [] { return true; };
  auto cancelled = s->wait_commits(any);
  REQUIRE_OK(cancelled);
  CHECK(cancelled->events.empty());
  // Bad input: kInvalidArgument, nothing changes.
  WaitOptions bad;
  bad.timeout_ms = 0;
  bad.since = "master:nothex";
  CHECK(code(s->wait_commits(bad)) == ErrorCode::kInvalidArgument);
  bad.since = "no colon";
  CHECK(code(s->wait_commits(bad)) == ErrorCode::kInvalidArgument);
  bad.since = "";
  bad.branch = "a/b";
  CHECK(code(s->wait_commits(bad)) == ErrorCode::kInvalidArgument);
  bad.branch = "";
  bad.timeout_ms = -1;
  CHECK(code(s->wait_commits(bad)) == ErrorCode::kInvalidArgument);
  CHECK(s->inspect_branch("master")->head == c3);
}

TEST_CASE("branches: create, write independently, list, delete") {
  Store s;
  s.put("shared", "base");
  std::string c1 = s.commit();
  auto dev = s->create_branch("dev", c1);
  REQUIRE_OK(dev);
  CHECK(dev->head == c1);
  s.put("shared", "dev", "dev");
  s.put("only-dev", "d", "dev");
  CHECK(s.get(M, "shared") == "base");
  CHECK(s.get(Ref::branch("dev"), "shared") == "dev");
  std::string d1 = s.commit("dev");
  auto log = s->list_commits(LogOptions{"dev", false, {}});
  REQUIRE(log->size() == 2);
  CHECK((*log)[0].id == d1);
  CHECK((*log)[0].branch == "dev");
  CHECK((*log)[1].id == c1);
  auto all = s->list_commits(LogOptions{"master", true, {}});
  CHECK(all->size() == 2);
  auto branches = s->list_branches();
  REQUIRE(branches->size() == 2);
  CHECK((*branches)[0].name == "dev");
  CHECK((*branches)[1].name == "master");
  CHECK(code(s->create_branch("dev")) == ErrorCode::kAlreadyExists);
  CHECK(code(s->create_branch("bad/name")) == ErrorCode::kInvalidArgument);
  CHECK(code(s->create_branch("x", "deadbeef")) == ErrorCode::kNotFound);
  CHECK(code(s->delete_branch("nope")) == ErrorCode::kNotFound);
  auto from_default = s->create_branch("copy");  // master's head
  REQUIRE_OK(from_default);
  CHECK(from_default->head == c1);
  {
    auto _r = s->delete_branch("dev");
    REQUIRE_OK(_r);
  }
  CHECK(code(s->inspect_branch("dev")) == ErrorCode::kNotFound);
  CHECK(s.get(Ref::commit(d1), "only-dev") == "d");  // its commits stay
  CHECK_FALSE(fs::exists(tree_path(s, "branches", "dev")));
  {
    auto _r = s->create_branch("dev", d1);
    REQUIRE_OK(_r);
  }  // the name can be used again
  CHECK(s.get(Ref::branch("dev"), "only-dev") == "d");
  s.check_fsck();
}

TEST_CASE("a branch from a master without commits starts empty") {
  Store s;
  s.put("x", "1");
  {
    auto _r = s->create_branch("dev");
    REQUIRE_OK(_r);
  }
  CHECK(s.paths(Ref::branch("dev")).empty());
}

TEST_CASE("list files by directory, recursively and by glob") {
  Store s;
  s.put("data/2024/a.csv", "1");
  s.put("data/2024/b.json", "22");
  s.put("data/2025/c.csv", "333");
  s.put("readme", "r");
  CHECK(s.paths(M, "", false) == std::vector<std::string>{"data/", "readme"});
  CHECK(s.paths(M, "data", false) == std::vector<std::string>{"data/2024/", "data/2025/"});
  CHECK(s.paths(M, "data/2024/a.csv") == std::vector<std::string>{"data/2024/a.csv"});
  CHECK(s.paths(M, "data/*/*.csv") ==
        std::vector<std::string>{"data/2024/a.csv", "data/2025/c.csv"});
  CHECK(s.paths(M, "**/*.csv") == std::vector<std::string>{"data/2024/a.csv", "data/2025/c.csv"});
  CHECK(s.paths(M, "data/202?") == std::vector<std::string>{"data/2024/", "data/2025/"});
  CHECK(s.paths(M, "data/**") == std::vector<std::string>{"data/2024/", "data/2024/a.csv",
                                                          "data/2024/b.json", "data/2025/",
                                                          "data/2025/c.csv"});
  CHECK(s.paths(M, "*.none").empty());
  CHECK(code(s->list_files(M, "missing")) == ErrorCode::kNotFound);
  CHECK(code(s->list_files(M, "../x")) == ErrorCode::kInvalidArgument);
  auto files = s->list_files(M, "data/2025");
  REQUIRE_OK(files);
  CHECK((*files)[0].size == 3);
  auto st = s->stat_file(M, "data");
  REQUIRE_OK(st);
  CHECK(st->type == FileInfo::Type::kDirectory);
}

TEST_CASE("delete files and directories") {
  Store s;
  s.put("d/a", "12");
  s.put("d/e/b", "345");
  s.put("f", "6");
  auto r = s->delete_file("master", "d");
  REQUIRE_OK(r);
  CHECK(r->files == 2);
  CHECK(r->bytes == 5);
  CHECK(s.paths(M) == std::vector<std::string>{"f"});
  CHECK(code(s->delete_file("master", "d")) == ErrorCode::kNotFound);
  {
    auto _r = s->delete_file("master", "f");
    REQUIRE_OK(_r);
  }
  auto b = s->inspect_branch("master");
  CHECK(b->stats.files == 0);
  CHECK(b->stats.bytes == 0);
  s.check_fsck();
}

TEST_CASE("diff reports added, modified and deleted files with sizes") {
  Store s;
  s.put("same", "s");
  s.put("mod", "old");
  s.put("gone", "bye");
  s.put("rewrite", "equal");
  s.put("dir/x", "1");
  std::string c1 = s.commit();
  s.put("mod", "newer");
  s.put("rewrite", "equal");  // same bytes, new inode: not a change
  {
    auto _r = s->delete_file("master", "gone");
    REQUIRE_OK(_r);
  }
  {
    auto _r = s->delete_file("master", "dir");
    REQUIRE_OK(_r);
  }
  s.put("dir", "now a file");
  s.put("new/y", "yy");
  std::string c2 = s.commit();
  auto d = s->diff(Ref::commit(c1), Ref::commit(c2));
  REQUIRE_OK(d);
  std::vector<std::string> got;
  for (auto& e : *d)
    got.push_back(std::string(change_name(e.change)) + " " + e.path + " " +
                  std::to_string(e.old_size) + "->" + std::to_string(e.new_size));
  CHECK(got == std::vector<std::string>{"added dir 0->10", "deleted dir/x 1->0",
                                        "deleted gone 3->0", "modified mod 3->5",
                                        "added new/y 0->2"});
  auto none = s->diff(Ref::commit(c2), Ref::any("master"));
  REQUIRE_OK(none);
  CHECK(none->empty());
  s.put("wip", "w");
  auto dirty = s->diff(Ref::any(c2), Ref::any("master"));  // a branch name: its working state
  REQUIRE(dirty->size() == 1);
  CHECK((*dirty)[0].path == "wip");
  CHECK(code(s->diff(Ref::any("nope"), Ref::any("master"))) == ErrorCode::kNotFound);
}

TEST_CASE("revert restores a prior commit as a new commit, keeping history") {
  Store s;
  s.put("f", "good");
  std::string good = s.commit("master", "good");
  s.put("f", "broken");
  s.put("junk", "j");
  std::string bad = s.commit("master", "bad");
  s.put("wip", "uncommitted");
  CHECK(code(s->revert("master", good)) == ErrorCode::kConflict);  // dirty: refuse
  CHECK(s.get(M, "wip") == "uncommitted");
  RevertOptions force;
  force.force = true;
  auto r = s->revert("master", good.substr(0, 8), force);
  REQUIRE_OK(r);
  CHECK(r->parent == bad);
  CHECK(r->message == "revert to " + good);
  CHECK(s.get(M, "f") == "good");
  CHECK(s.paths(M) == std::vector<std::string>{"f"});
  CHECK(s.get(Ref::commit(bad), "junk") == "j");  // history is kept
  auto log = s->list_commits();
  CHECK(log->size() == 3);
  auto b = s->inspect_branch("master");
  CHECK_FALSE(b->dirty);
  CHECK(b->head == r->id);
  CHECK(b->stats.files == 1);
  CHECK(code(s->revert("master", "0000")) == ErrorCode::kNotFound);
  s.check_fsck();
}

TEST_CASE("merge: clean three-way merge of a deep history with branches") {
  Store s;
  s.put("base", "0");
  s.put("edit-on-dev", "0");
  s.put("edit-on-master", "0");
  s.put("delete-on-dev", "0");
  std::string c1 = s.commit("master", "c1");
  {
    auto _r = s->create_branch("dev", c1);
    REQUIRE_OK(_r);
  }
  s.put("edit-on-master", "m");
  std::string c2 = s.commit("master", "c2");
  s.put("edit-on-dev", "d", "dev");
  {
    auto _r = s->delete_file("dev", "delete-on-dev");
    REQUIRE_OK(_r);
  }
  s.put("sub/new-on-dev", "n", "dev");
  s.commit("dev", "d1");
  {
    auto _r = s->create_branch("feature", "dev");
    REQUIRE_OK(_r);
  }
  s.put("feature-file", "f", "feature");
  s.commit("feature", "f1");
  auto mf = s->merge("dev", "feature");
  REQUIRE_OK(mf);
  REQUIRE(mf->commit);
  CHECK(mf->conflicts.empty());
  auto m = s->merge("master", "dev");
  REQUIRE_OK(m);
  REQUIRE(m->commit);
  CHECK(m->base == c1);
  CHECK(m->commit->parent == c2);
  CHECK(m->commit->merge_parent == mf->commit->id);
  CHECK(s.paths(M) == std::vector<std::string>{"base", "edit-on-dev", "edit-on-master",
                                               "feature-file", "sub/", "sub/new-on-dev"});
  CHECK(s.get(M, "edit-on-dev") == "d");
  CHECK(s.get(M, "edit-on-master") == "m");
  CHECK(m->commit->stats.files == 5);
  CHECK_FALSE(s->inspect_branch("master")->dirty);
  // Nothing new: up to date.
  auto again = s->merge("master", "dev");
  REQUIRE_OK(again);
  CHECK(again->up_to_date);
  // More work on dev: only the new change travels, base is the last merge.
  s.put("edit-on-dev", "d2", "dev");
  s.commit("dev", "d2");
  s.put("edit-on-master", "m2");
  s.commit("master", "m2");
  auto m2 = s->merge("master", "dev");
  REQUIRE_OK(m2);
  REQUIRE(m2->commit);
  CHECK(m2->base == mf->commit->id);
  CHECK(m2->applied.size() == 1);
  CHECK(s.get(M, "edit-on-dev") == "d2");
  CHECK(s.get(M, "edit-on-master") == "m2");
  auto log = s->list_commits();
  CHECK(log->size() == 5);  // m2-merge, m2, merge, c2, c1 (first parents)
  s.check_fsck();
}

TEST_CASE("merge conflicts are reported and nothing changes unless a side is chosen") {
  Store s;
  s.put("f", "base");
  s.put("other", "o");
  std::string c1 = s.commit();
  {
    auto _r = s->create_branch("dev");
    REQUIRE_OK(_r);
  }
  s.put("f", "master side");
  std::string c2 = s.commit();
  s.put("f", "dev side", "dev");
  s.put("g", "from dev", "dev");
  s.commit("dev");
  auto m = s->merge("master", "dev");
  REQUIRE_OK(m);
  CHECK_FALSE(m->commit);
  CHECK(m->conflicts == std::vector<std::string>{"f"});
  CHECK(s.get(M, "f") == "master side");
  CHECK(s.paths(M) == std::vector<std::string>{"f", "other"});
  CHECK(s->inspect_branch("master")->head == c2);
  MergeOptions ours;
  ours.on_conflict = MergeOptions::Strategy::kOurs;
  auto mo = s->merge("master", "dev", ours);
  REQUIRE_OK(mo);
  REQUIRE(mo->commit);
  CHECK(s.get(M, "f") == "master side");
  CHECK(s.get(M, "g") == "from dev");
  s.put("f", "dev again", "dev");
  s.commit("dev");
  s.put("f", "master again");
  s.commit();
  MergeOptions theirs;
  theirs.on_conflict = MergeOptions::Strategy::kTheirs;
  auto mt = s->merge("master", "dev", theirs);
  REQUIRE_OK(mt);
  REQUIRE(mt->commit);
  CHECK(s.get(M, "f") == "dev again");
  s.check_fsck();
}

TEST_CASE("merge: a file against a directory is a conflict") {
  Store s;
  s.put("keep", "k");
  s.commit();
  {
    auto _r = s->create_branch("dev");
    REQUIRE_OK(_r);
  }
  s.put("x", "file on master");
  s.commit();
  s.put("x/y", "dir on dev", "dev");
  s.commit("dev");
  auto m = s->merge("master", "dev");
  REQUIRE_OK(m);
  CHECK_FALSE(m->commit);
  CHECK(m->conflicts == std::vector<std::string>{"x/y"});
  CHECK(s.get(M, "x") == "file on master");
  MergeOptions theirs;
  theirs.on_conflict = MergeOptions::Strategy::kTheirs;
  auto mt = s->merge("master", "dev", theirs);
  REQUIRE_OK(mt);
  REQUIRE(mt->commit);
  CHECK(s.get(M, "x/y") == "dir on dev");
  s.check_fsck();
}

TEST_CASE("merge refuses a dirty target and bad names") {
  Store s;
  s.put("f", "1");
  s.commit();
  {
    auto _r = s->create_branch("dev");
    REQUIRE_OK(_r);
  }
  s.put("g", "2", "dev");
  s.commit("dev");
  s.put("wip", "w");
  CHECK(code(s->merge("master", "dev")) == ErrorCode::kConflict);
  CHECK(code(s->merge("master", "nope")) == ErrorCode::kNotFound);
  CHECK(code(s->merge("master", "master")) == ErrorCode::kInvalidArgument);
  CHECK(s.paths(M) == std::vector<std::string>{"f", "wip"});
}

TEST_CASE("delete a commit only where nothing depends on it") {
  Store s;
  s.put("f", "1");
  std::string c1 = s.commit();
  s.put("f", "2");
  std::string c2 = s.commit();
  CHECK(code(s->delete_commit(c2)) == ErrorCode::kConflict);  // head of master
  CHECK(code(s->delete_commit(c1)) == ErrorCode::kConflict);  // parent of c2
  {
    auto _r = s->create_branch("tmp");
    REQUIRE_OK(_r);
  }
  s.put("t", "t", "tmp");
  std::string t1 = s.commit("tmp");
  {
    auto _r = s->delete_branch("tmp");
    REQUIRE_OK(_r);
  }
  {
    auto _r = s->delete_commit(t1);
    REQUIRE_OK(_r);
  }
  CHECK(code(s->inspect_commit(t1)) == ErrorCode::kNotFound);
  CHECK_FALSE(fs::exists(tree_path(s, "commits", t1)));
  CHECK(code(s->delete_commit(t1)) == ErrorCode::kNotFound);
  s.check_fsck();
}

TEST_CASE("put_dir copies a local tree, merges into existing and skips special files") {
  Store s;
  std::string local = unique_dir("localtree");
  fs::create_directories(local + "/a/b");
  std::ofstream(local + "/top.txt") << "top";
  std::ofstream(local + "/a/b/deep.txt") << "deep";
  fs::create_symlink("/etc/passwd", local + "/link");
  auto r = s->put_dir("master", "imp", local);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  CHECK(r->files == 2);
  CHECK(r->bytes == 7);
  CHECK(r->skipped == std::vector<std::string>{"link"});
  CHECK(s.paths(M) ==
        std::vector<std::string>{"imp/", "imp/a/", "imp/a/b/", "imp/a/b/deep.txt", "imp/top.txt"});
  std::ofstream(local + "/top.txt") << "TOP!";
  auto r2 = s->put_dir("master", "imp", local);  // merge: replaces top.txt
  REQUIRE_OK(r2);
  CHECK(s.get(M, "imp/top.txt") == "TOP!");
  auto b = s->inspect_branch("master");
  CHECK(b->stats.files == 2);
  CHECK(b->stats.bytes == 8);
  auto root = s->put_dir("master", ".", local);
  REQUIRE_OK(root);
  CHECK(s.get(M, "top.txt") == "TOP!");
  // A local name pfs cannot store: nothing of the upload lands.
  std::string badl = unique_dir("badtree");
  fs::create_directories(badl);
  std::ofstream(badl + "/ok.txt") << "ok";
  std::ofstream(badl + "/new\nline") << "x";
  CHECK(code(s->put_dir("master", "bad", badl)) == ErrorCode::kInvalidArgument);
  CHECK(code(s->stat_file(M, "bad")) == ErrorCode::kNotFound);
  CHECK(code(s->put_dir("master", "x", local + "/missing")) == ErrorCode::kNotFound);
  s.check_fsck();
}

TEST_CASE("concurrent writers and committers lose nothing") {
  Store s;
  constexpr int kThreads = 4, kFiles = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::mutex mu;
  std::string errors;  // what failed, for the report
  auto failed = [&](const Error& e) {
    failures++;
    std::lock_guard<std::mutex> g(mu);
    errors += e.message + "\n";
  };
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFiles; ++i) {
        auto src = Source::from_string(std::string(static_cast<std::size_t>(i + 1), 'a' + t));
        auto r = s->put_file("master", "t" + std::to_string(t) + "/f" + std::to_string(i), *src);
        if (!r) failed(r.error());
      }
    });
  threads.emplace_back([&] {
    for (int i = 0; i < 10; ++i) {
      auto r = s->commit("master");
      if (!r) failed(r.error());
    }
  });
  for (auto& th : threads) th.join();
  CHECK_MESSAGE(failures == 0, errors);
  s.commit();
  auto b = s->inspect_branch("master");
  CHECK(b->stats.files == kThreads * kFiles);
  CHECK(s.paths(M, "", true).size() == kThreads * kFiles + kThreads);
  CHECK(s.get(M, "t2/f9") == std::string(10, 'c'));
  auto log = s->list_commits();
  CHECK(log->size() == 11);
  s.check_fsck();
}

TEST_CASE("fsck finds leftovers and --repair removes them") {
  Store s;
  s.put("f", "1");
  s.commit();
  s.put("f", "2");
  std::string c2 = s.commit();
  {
    auto _r = s->create_branch("tmp");
    REQUIRE_OK(_r);
  }
  std::string t = s.commit("tmp");
  {
    auto _r = s->delete_branch("tmp");
    REQUIRE_OK(_r);
  }
  // Simulate a crash between the two steps of delete-commit: metadata gone,
  // tree left behind.
  fs::remove(s.path + "/meta/commits/" + t + ".json");
  auto r = s->fsck();
  REQUIRE_OK(r);
  CHECK(r->problems.empty());  // a leftover is not damage
  REQUIRE(r->leftovers.size() == 1);
  CHECK(r->leftovers[0].find(t) != std::string::npos);
  auto fixed = s->fsck(true);
  REQUIRE_OK(fixed);
  CHECK(fixed->problems.empty());
  CHECK(fixed->leftovers.empty());
  CHECK(fixed->repaired.size() == 1);
  s.check_fsck();
  // A wrong size figure is found too.
  std::string meta = s.path + "/meta/commits/" + c2 + ".json";
  std::ifstream in(meta);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto pos = text.find("\"files\": 1");
  REQUIRE(pos != std::string::npos);
  text.replace(pos, 10, "\"files\": 7");
  std::ofstream(meta) << text;
  auto r2 = s->fsck();
  REQUIRE_OK(r2);
  CHECK(r2->problems.size() == 1);
}

TEST_CASE("library version is set") { CHECK(version() == "0.1.0"); }

namespace {
std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(&out[i], &v, 8);
  }
  return out;
}
}  // namespace

TEST_CASE("big files read back whole and by ranges, also across chunk boundaries") {
  Store s;
  std::string big = random_bytes(9 << 20, 1);  // several chunks on the portable backend
  s.put("big.bin", big);
  std::string c = s.commit();
  CHECK(s.get(Ref::commit(c), "big.bin") == big);
  for (std::uint64_t off : {0ull, 1ull, (512ull << 10) - 1, 4ull << 20, (9ull << 20) - 10}) {
    std::string out;
    auto sink = Sink::to_string(&out);
    ReadRange r;
    r.offset = off;
    r.length = 3 << 20;
    REQUIRE_OK(s->get_file(Ref::commit(c), "big.bin", *sink, r));
    CHECK(out == big.substr(off, 3 << 20));
  }
  // Append, twice; a change in the middle; all read back.
  std::string more = random_bytes(1 << 20, 2);
  for (int i = 0; i < 2; i++) {
    auto src = Source::from_string(more);
    PutOptions opts;
    opts.append = true;
    REQUIRE_OK(s->put_file("master", "big.bin", *src, opts));
    big += more;
  }
  CHECK(s.get(M, "big.bin") == big);
  std::string changed = big;
  changed[5 << 20] ^= 1;
  s.put("big.bin", changed);
  auto d = s->diff(Ref::commit(c), M);
  REQUIRE_OK(d);
  REQUIRE(d->size() == 1);
  CHECK((*d)[0].change == DiffEntry::Change::kModified);
  CHECK(s.get(M, "big.bin") == changed);
  s.check_fsck();
}

TEST_CASE("gc removes only what no commit or branch reaches") {
  Store s;
  s.put("keep/a", random_bytes(700 << 10, 3));
  s.put("keep/b", "small");
  std::string c1 = s.commit();
  {
    auto r = s->create_branch("tmp");
    REQUIRE_OK(r);
  }
  s.put("doomed", random_bytes(2 << 20, 4), "tmp");
  std::string t1 = s.commit("tmp");
  s.put("keep/b", "overwritten");  // the old working state's manifests become garbage
  REQUIRE_OK(s->delete_branch("tmp"));
  REQUIRE_OK(s->delete_commit(t1));
  auto g = s->gc();
  REQUIRE_OK(g);
  if (on_btrfs()) {
    CHECK(g->objects_removed == 0);  // btrfs frees space when the commit goes
  } else {
    CHECK(g->bytes_removed >= (2u << 20));
    CHECK(g->objects_kept > 0);
    auto again = s->gc();
    REQUIRE_OK(again);
    CHECK(again->objects_removed == 0);
  }
  CHECK(s.get(Ref::commit(c1), "keep/a") == random_bytes(700 << 10, 3));
  CHECK(s.get(Ref::commit(c1), "keep/b") == "small");
  CHECK(s.get(M, "keep/b") == "overwritten");
  s.check_fsck();
}

TEST_CASE("put_file at an offset overwrites a range, extends the file, and refuses bad offsets") {
  Store s;
  std::string big = random_bytes(6 << 20, 5);
  s.put("f", big);
  std::string c0 = s.commit();
  auto write_at = [&](std::uint64_t off, const std::string& data) {
    auto src = Source::from_string(data);
    PutOptions o;
    o.offset = off;
    return s->put_file("master", "f", *src, o);
  };
  std::string patch = random_bytes(300 << 10, 6);
  REQUIRE_OK(write_at(3 << 20, patch));
  big.replace(3 << 20, patch.size(), patch);
  CHECK(s.get(M, "f") == big);
  REQUIRE_OK(write_at(big.size() - 100, patch));  // runs past the end: extends
  big.replace(big.size() - 100, 100, patch);
  CHECK(s.get(M, "f") == big);
  auto info = s->stat_file(M, "f");
  REQUIRE_OK(info);
  CHECK(info->size == big.size());
  REQUIRE_OK(write_at(big.size(), "tail"));  // at the very end: an append
  big += "tail";
  CHECK(s.get(M, "f") == big);
  auto b = s->inspect_branch("master");
  REQUIRE_OK(b);
  CHECK(b->stats.bytes == big.size());
  // Refused, changing nothing: past the end, no such file, with append.
  CHECK(code(write_at(big.size() + 1, "x")) == ErrorCode::kInvalidArgument);
  auto src = Source::from_string("x");
  PutOptions o;
  o.offset = 0;
  CHECK(code(s->put_file("master", "nofile", *src, o)) == ErrorCode::kNotFound);
  auto src2 = Source::from_string("x");
  o.append = true;
  CHECK(code(s->put_file("master", "f", *src2, o)) == ErrorCode::kInvalidArgument);
  CHECK(s.get(M, "f") == big);
  CHECK(code(s->stat_file(M, "nofile")) == ErrorCode::kNotFound);
  // The commit before is untouched; the diff sees one modified file.
  CHECK(s.get(Ref::commit(c0), "f") == random_bytes(6 << 20, 5));
  std::string c1 = s.commit();
  auto d = s->diff(Ref::commit(c0), Ref::commit(c1));
  REQUIRE_OK(d);
  REQUIRE(d->size() == 1);
  CHECK((*d)[0].change == DiffEntry::Change::kModified);
  s.check_fsck();
}

// FNV-1a of a name: where the portable backend ends a directory page
// (docs/format.md). Used to make names that force its rarer cases.
static std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001b3ULL;
  }
  return h;
}

TEST_CASE("a big directory changed at random reads back right and stays canonical") {
  // On the portable backend, a directory of more than 64 entries is stored
  // as pages, and a change rewrites only the pages it touches; fsck checks
  // that the result is exactly what paging the whole directory would give.
  // The pool has ordinary names and a run of 150 names none of which ends a
  // page by its hash, so pages there end at 64 entries and an insertion or
  // deletion moves the ends of the pages after it.
  Store s;
  std::vector<std::string> pool;
  for (int i = 0; i < 250; i++) pool.push_back("n" + std::to_string(i * 7919 % 10007));
  for (int i = 0; pool.size() < 400; i++) {
    std::string name = "run" + std::to_string(10000 + i);
    if (fnv1a(name) % 16 != 0) pool.push_back(name);
  }
  std::mt19937 rng(42);
  std::map<std::string, std::string> model;  // path -> content
  auto pick = [&] { return pool[rng() % pool.size()]; };
  for (const auto& n : pool)
    if (rng() % 4 != 0) model["big/" + n] = "v0 " + n;
  for (const auto& [p, data] : model) s.put(p, data);
  s.commit();
  for (int round = 1; round <= 12; round++) {
    int ops = round % 3 == 0 ? 60 : 8;
    for (int k = 0; k < ops; k++) {
      std::string p = "big/" + pick();
      switch (rng() % 4) {
        case 0:
        case 1: {  // add or overwrite a file
          std::string data = "v" + std::to_string(round) + " " + p;
          s.put(p, data);
          model[p] = data;
          break;
        }
        case 2: {  // delete one, when there
          auto r = s->delete_file("master", p);
          if (model.erase(p)) {
            CHECK(r.ok());
          } else {
            CHECK(!r.ok());
          }
          break;
        }
        default: {  // a file in a subdirectory: changes the entry of a directory
          std::string q = "big/sub" + pick().substr(0, 3) + "/" + pick();
          s.put(q, "in a subdirectory");
          model[q] = "in a subdirectory";
        }
      }
    }
    std::string id = s.commit("master", "round " + std::to_string(round));
    std::vector<std::string> want;
    std::set<std::string> dirs;
    for (const auto& [p, data] : model) {
      auto slash = p.rfind('/');
      if (p.substr(0, slash) != "big") dirs.insert(p.substr(0, slash) + "/");
      want.push_back(p);
    }
    want.insert(want.end(), dirs.begin(), dirs.end());
    want.push_back("big/");
    std::sort(want.begin(), want.end());
    auto got = s.paths(Ref::commit(id));
    std::sort(got.begin(), got.end());
    CHECK(got == want);
    for (int k = 0; k < 5; k++) {
      auto it = std::next(model.begin(), static_cast<long>(rng() % model.size()));
      CHECK(s.get(Ref::commit(id), it->first) == it->second);
    }
    s.check_fsck();
  }
}

TEST_CASE(
    "the file cache of a long-running reader serves commits exactly, never a branch's changes") {
  Store s("cache");
  OpenOptions oo;
  oo.file_cache_bytes = 1 << 20;
  Connection reader(s.path, oo);  // remotely: a server of the caching store
  Client& c = *reader;
  auto read = [&](const Ref& ref, const std::string& p, std::uint64_t off = 0,
                  std::size_t n = 100) {
    auto f = c.open_file(ref, p);
    REQUIRE_MESSAGE(f.ok(), (f.ok() ? "" : f.error().message));
    std::string buf(n, '\0');
    auto got = (*f)->read_at(off, std::span<char>(buf.data(), buf.size()));
    REQUIRE(got.ok());
    buf.resize(*got);
    return std::pair<std::string, std::uint64_t>(buf, (*f)->info().size);
  };
  s.put("a.txt", "version one");
  std::string c1 = s.commit();
  CHECK(read(Ref::commit(c1), "a.txt").first == "version one");  // fills the cache
  CHECK(read(Ref::commit(c1), "a.txt").first == "version one");  // from it
  CHECK(read(Ref::commit(c1), "a.txt", 8, 3).first == "one");    // a range of it
  CHECK(read(Ref::commit(c1), "a.txt", 50, 3).first.empty());    // past the end
  CHECK(read(Ref::commit(c1), "a.txt").second == 11);
  // A branch moves on: its head and working state are read afresh, the old
  // commit still reads as it was.
  s.put("a.txt", "version two!");
  CHECK(read(Ref::branch("master"), "a.txt").first == "version two!");
  CHECK(read(Ref::commit("master"), "a.txt").first == "version one");
  std::string c2 = s.commit();
  CHECK(read(Ref::commit("master"), "a.txt").first == "version two!");
  CHECK(read(Ref::commit(c1), "a.txt").first == "version one");
  CHECK(read(Ref::commit(c2), "a.txt").first == "version two!");
  // Errors are the same as without the cache.
  auto missing = c.open_file(Ref::commit(c1), "nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);
  // A deleted commit is gone, cached or not.
  REQUIRE(c.create_branch("side", c1).ok());
  std::string c3 = c.commit("side", "").value().id;
  CHECK(read(Ref::commit(c3), "a.txt").first == "version one");
  REQUIRE(c.delete_branch("side").ok());
  REQUIRE(c.delete_commit(c3).ok());
  auto gone = c.open_file(Ref::commit(c3), "a.txt");
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == ErrorCode::kNotFound);
}

// ---- the calls above did not reach: put_files, get_dir, open_file on a
// branch, send, receive, set_branch_head ------------------------------------

namespace {
// The files of a put_files call from a list of (path, content); a content of
// "<fail>" is a source that fails mid-way.
class ListBatch final : public FileBatch {
 public:
  ListBatch(std::initializer_list<std::pair<std::string, std::string>> files) : files_(files) {}
  Result<Source*> next(std::string& path) override {
    if (i_ == files_.size()) return static_cast<Source*>(nullptr);
    path = files_[i_].first;
    const std::string& data = files_[i_++].second;
    src_ =
        data == "<fail>" ? std::unique_ptr<Source>(new FailingSource) : Source::from_string(data);
    return src_.get();
  }

 private:
  struct FailingSource final : Source {
    int reads = 0;
    Result<std::size_t> read(std::span<char> buf) override {
      if (reads++ == 0 && !buf.empty()) {
        buf[0] = 'x';
        return std::size_t{1};
      }
      return Error{ErrorCode::kIo, "the test's source fails here"};
    }
  };
  std::vector<std::pair<std::string, std::string>> files_;
  std::size_t i_ = 0;
  std::unique_ptr<Source> src_;
};

std::string read_local(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}
}  // namespace

TEST_CASE("put_files writes a batch whole, or nothing of it") {
  Store s;
  s.put("d/old", "o");
  ListBatch batch({{"a.txt", "aa"}, {"sub/b.txt", "bbb"}, {"old", "new"}});
  auto r = s->put_files("master", "d", batch);
  REQUIRE_OK(r);
  CHECK(r->files == 3);
  CHECK(r->bytes == 8);
  CHECK(s.paths(M) == std::vector<std::string>{"d/", "d/a.txt", "d/old", "d/sub/", "d/sub/b.txt"});
  CHECK(s.get(M, "d/old") == "new");
  ListBatch root({{"top", "t"}});
  REQUIRE_OK(s->put_files("master", ".", root));
  CHECK(s.get(M, "top") == "t");
  auto before = s.paths(M);
  // A bad path, or a source that fails, after good files: none of them lands.
  ListBatch bad({{"good1", "g"}, {"../evil", "e"}});
  CHECK(code(s->put_files("master", "x", bad)) == ErrorCode::kInvalidArgument);
  ListBatch failing({{"good2", "g"}, {"broken", "<fail>"}});
  CHECK_FALSE(s->put_files("master", "y", failing).ok());
  CHECK(s.paths(M) == before);
  ListBatch nobranch({{"f", "f"}});
  CHECK(code(s->put_files("nope", ".", nobranch)) == ErrorCode::kNotFound);
  s.check_fsck();
}

TEST_CASE("get_dir copies a tree out, and refuses a file or a non-empty target") {
  Store s;
  s.put("d/a", "12");
  s.put("d/e/b", "345");
  s.put("f", "6");
  std::string c1 = s.commit();
  s.put("d/a", "changed");
  std::string out = unique_dir("getdir");
  auto r = s->get_dir(Ref::commit(c1), "d", out + "/made/with/parents");
  REQUIRE_OK(r);
  CHECK(r->files == 2);
  CHECK(r->bytes == 5);
  CHECK(read_local(out + "/made/with/parents/a") == "12");
  CHECK(read_local(out + "/made/with/parents/e/b") == "345");
  auto whole = s->get_dir(M, ".", out + "/whole");  // the working state
  REQUIRE_OK(whole);
  CHECK(whole->files == 3);
  CHECK(read_local(out + "/whole/d/a") == "changed");
  CHECK(read_local(out + "/whole/f") == "6");
  fs::create_directories(out + "/empty");
  REQUIRE_OK(s->get_dir(M, "d/e", out + "/empty"));  // an empty directory will do
  CHECK(read_local(out + "/empty/b") == "345");
  CHECK(code(s->get_dir(M, "f", out + "/file")) == ErrorCode::kInvalidArgument);
  CHECK(code(s->get_dir(M, "d", out + "/whole")) == ErrorCode::kInvalidArgument);
  CHECK(read_local(out + "/whole/d/a") == "changed");  // the refused target is untouched
  CHECK(code(s->get_dir(M, "nope", out + "/n1")) == ErrorCode::kNotFound);
  CHECK(code(s->get_dir(Ref::commit("ffffffffffffffffffffffffffffffff"), ".", out + "/n2")) ==
        ErrorCode::kNotFound);
}

TEST_CASE("open_file and stat_file: a file of a branch, a directory, errors") {
  Store s;
  s.put("d/f", "0123456789");
  auto st = s->stat_file(M, "d");
  REQUIRE_OK(st);
  CHECK(st->type == FileInfo::Type::kDirectory);
  CHECK(st->path == "d");
  auto fst = s->stat_file(M, "d/f");
  REQUIRE_OK(fst);
  CHECK(fst->type == FileInfo::Type::kFile);
  CHECK(fst->size == 10);
  auto f = s->open_file(M, "d/f");
  REQUIRE_OK(f);
  CHECK((*f)->info().size == 10);
  char buf[4];
  auto n = (*f)->read_at(8, buf);
  REQUIRE_OK(n);
  CHECK(std::string(buf, *n) == "89");
  auto end = (*f)->read_at(10, buf);
  REQUIRE_OK(end);
  CHECK(*end == 0);
  CHECK(code(s->open_file(M, "d")) == ErrorCode::kInvalidArgument);
  CHECK(code(s->open_file(M, "nope")) == ErrorCode::kNotFound);
  CHECK(code(s->open_file(M, "../x")) == ErrorCode::kInvalidArgument);
  CHECK(code(s->open_file(Ref::branch("nobranch"), "d/f")) == ErrorCode::kNotFound);
  CHECK(code(s->stat_file(M, "a//b")) == ErrorCode::kInvalidArgument);
}

TEST_CASE("send and receive carry commits between stores, whole and incrementally") {
  Store a("send");
  Store b("receive");
  a.put("data/x", "x1");
  a.put("data/big", random_bytes(300 << 10, 7));
  std::string c1 = a.commit("master", "first");
  a.put("data/x", "x2");
  REQUIRE_OK(a->delete_file("master", "data/big"));
  a.put("y", "yy");
  std::string c2 = a.commit("master", "second");

  std::string full;
  auto sink = Sink::to_string(&full);
  auto sent = a->send(c1, *sink);
  REQUIRE_OK(sent);
  CHECK(sent->id == c1);
  // Received as a new commit on a branch (created).
  auto src = Source::from_string(full);
  ReceiveOptions on_branch;
  on_branch.branch = "imported";
  auto got = b->receive(*src, on_branch);
  REQUIRE_OK(got);
  CHECK(got->stream_bytes == full.size());
  CHECK(got->skipped.empty());
  CHECK(b.get(Ref::commit(got->commit.id), "data/x") == "x1");
  CHECK(b.get(Ref::branch("imported"), "data/big") == random_bytes(300 << 10, 7));
  CHECK(b->inspect_branch("imported")->head == got->commit.id);
  // Received as exactly the sender's commits: the same ids, no branch moved.
  auto c1_info = a->inspect_commit(c1);
  REQUIRE_OK(c1_info);
  ReceiveOptions exact;
  exact.as_commit = *c1_info;
  auto src2 = Source::from_string(full);
  auto same = b->receive(*src2, exact);
  REQUIRE_OK(same);
  CHECK(same->commit.id == c1);
  CHECK(same->commit.message == "first");
  auto src3 = Source::from_string(full);
  CHECK(code(b->receive(*src3, exact)) == ErrorCode::kAlreadyExists);
  std::string incr;
  auto sink2 = Sink::to_string(&incr);
  SendOptions since;
  since.parent = c1;
  REQUIRE_OK(a->send(c2, *sink2, since));
  auto c2_info = a->inspect_commit(c2);
  REQUIRE_OK(c2_info);
  exact.as_commit = *c2_info;
  auto src4 = Source::from_string(incr);
  auto second = b->receive(*src4, exact);
  REQUIRE_OK(second);
  CHECK(second->commit.id == c2);
  CHECK(second->commit.parent == c1);
  CHECK(b.paths(Ref::commit(c2)) == a.paths(Ref::commit(c2)));
  CHECK(b.get(Ref::commit(c2), "data/x") == "x2");
  CHECK(b->inspect_branch("master")->head.empty());
  // A truncated or garbled stream is refused and changes nothing.
  auto before = b->list_commits(LogOptions{"master", true, {}});
  REQUIRE_OK(before);
  auto cut = Source::from_string(full.substr(0, full.size() / 2));
  CHECK(code(b->receive(*cut, on_branch)) == ErrorCode::kInvalidArgument);
  auto junk = Source::from_string("not a send stream at all");
  CHECK(code(b->receive(*junk, on_branch)) == ErrorCode::kInvalidArgument);
  auto after = b->list_commits(LogOptions{"master", true, {}});
  REQUIRE_OK(after);
  CHECK(after->size() == before->size());
  // An incremental stream whose parent the store lacks.
  Store fresh("fresh");
  auto src5 = Source::from_string(incr);
  CHECK(code(fresh->receive(*src5)) == ErrorCode::kNotFound);
  CHECK(code(a->send("ffffffffffffffffffffffffffffffff", *sink2)) == ErrorCode::kNotFound);
  a.check_fsck();
  b.check_fsck();
}

TEST_CASE("set_branch_head moves a branch by compare-and-swap") {
  Store s;
  s.put("f", "1");
  std::string c1 = s.commit();
  s.put("f", "2");
  std::string c2 = s.commit();
  SetHeadOptions expect;
  expect.expected_head = c1;  // stale: master's head is c2
  CHECK(code(s->set_branch_head("master", c1, expect)) == ErrorCode::kConflict);
  CHECK(s->inspect_branch("master")->head == c2);
  expect.expected_head = c2;
  auto moved = s->set_branch_head("master", c1, expect);
  REQUIRE_OK(moved);
  CHECK(moved->head == c1);
  CHECK(s.get(M, "f") == "1");
  // A missing branch is created ("" expects no branch).
  SetHeadOptions none;
  none.expected_head = "";
  auto made = s->set_branch_head("dev", c2, none);
  REQUIRE_OK(made);
  CHECK(s.get(Ref::branch("dev"), "f") == "2");
  // Uncommitted writes hold it back, unless forced (they are discarded).
  s.put("wip", "w", "dev");
  CHECK(code(s->set_branch_head("dev", c1)) == ErrorCode::kConflict);
  SetHeadOptions force;
  force.force = true;
  REQUIRE_OK(s->set_branch_head("dev", c1, force));
  CHECK(s.paths(Ref::branch("dev")) == std::vector<std::string>{"f"});
  CHECK_FALSE(s->inspect_branch("dev")->dirty);
  CHECK(code(s->set_branch_head("dev", "ffffffffffffffffffffffffffffffff")) ==
        ErrorCode::kNotFound);
  CHECK(code(s->set_branch_head("bad name", c1)) == ErrorCode::kInvalidArgument);
  s.check_fsck();
}

TEST_CASE("a file opened on a branch keeps the content it had when opened") {
  // client.h: "remotely each read asks the server again" -- by design, a
  // remote FileHandle holds no snapshot of a branch's working state.
  SKIP_REMOTE("a remote FileHandle of a branch reads the branch afresh (pfs/client.h)");
  Store s;
  s.put("f", "before");
  auto f = s->open_file(M, "f");
  REQUIRE_OK(f);
  s.put("f", "AFTER!");
  char buf[16];
  auto n = (*f)->read_at(0, buf);
  REQUIRE_OK(n);
  CHECK(std::string(buf, *n) == "before");
}

namespace {
std::string describe(const FileInfo& f) {
  return f.path + " " + std::to_string(static_cast<int>(f.type)) + " " + std::to_string(f.size) +
         " " + std::to_string(f.mtime_ns);
}
std::string describe(const CommitInfo& c) {
  return c.id + " " + c.parent + " " + c.merge_parent + " " + c.branch + " " +
         std::to_string(c.time_ns) + " " + c.message + " " + std::to_string(c.stats.files) + " " +
         std::to_string(c.stats.bytes);
}
std::string describe(const BranchInfo& b) {
  return b.name + " " + b.head + " " + std::to_string(b.dirty) + " " +
         std::to_string(b.stats.files) + " " + std::to_string(b.stats.bytes) + " " +
         std::to_string(b.created_ns);
}
std::string describe(const DiffEntry& d) {
  return std::to_string(static_cast<int>(d.change)) + " " + d.path + " " +
         std::to_string(d.old_size) + " " + std::to_string(d.new_size);
}
std::string describe(const MergeResult& m) {
  std::string out = std::to_string(m.up_to_date) + " " + m.base + " " +
                    (m.commit ? describe(*m.commit) : "no commit");
  for (const auto& d : m.applied) out += "\n" + describe(d);
  for (const auto& p : m.conflicts) out += "\nconflict " + p;
  return out;
}
template <class T>
std::string describe(const Result<T>& r) {
  if (!r)
    return "error " + std::to_string(static_cast<int>(r.error().code)) + ": " + r.error().message;
  if constexpr (std::is_same_v<T, void>) {
    return "ok";
  } else if constexpr (std::is_same_v<T, StoreInfo>) {
    return r->path + " " + r->backend + " " + std::to_string(r->format) + " " +
           std::to_string(r->commits) + " " + std::to_string(r->branches);
  } else if constexpr (requires { r->begin(); }) {
    std::string out;
    for (const auto& x : *r) out += describe(x) + "\n";
    return out;
  } else {
    return describe(*r);
  }
}
}  // namespace

TEST_CASE("the client under test answers exactly as the store itself does") {
  // Remotely, every figure, time and error message must come through as
  // the store gives it (pfs/remote.h); locally this compares the store with
  // a second client of it.
  Store s;
  s.put("d/a", "12");
  s.put("d/e/b", "345");
  std::string c1 = s.commit("master", "first: with \"quotes\", ünïcode and a\nnewline");
  s.put("d/a", "changed");
  REQUIRE_OK(s->create_branch("dev", c1));
  auto opened = open_store(s.path);
  REQUIRE_OK(opened);
  Client& local = **opened;
  Client& tested = *s.c;
  ListOptions rec;
  rec.recursive = true;
  auto both = [&](auto call) { CHECK(describe(call(tested)) == describe(call(local))); };
  both([](Client& c) { return c.info(); });
  both([&](Client& c) { return c.list_files(M, ".", rec); });
  both([&](Client& c) { return c.list_files(Ref::commit(c1), "d/*", {}); });
  both([&](Client& c) { return c.stat_file(Ref::commit(c1), "d/e/b"); });
  both([&](Client& c) { return c.stat_file(M, "d"); });
  both([&](Client& c) { return c.inspect_commit(c1); });
  both([&](Client& c) { return c.list_commits(LogOptions{"master", true, {}}); });
  both([&](Client& c) { return c.list_branches(); });
  both([&](Client& c) { return c.inspect_branch("master"); });
  // Errors: the same code and message.
  both([&](Client& c) { return c.inspect_branch("nope"); });
  both([&](Client& c) { return c.inspect_branch("bad name"); });
  both([&](Client& c) { return c.inspect_commit("ffffffffffffffffffffffffffffffff"); });
  both([&](Client& c) { return c.stat_file(M, "d/nope"); });
  both([&](Client& c) { return c.stat_file(M, "../x"); });
  both([&](Client& c) { return c.list_files(Ref::branch("nope"), ".", {}); });
  both([&](Client& c) { return c.create_branch("dev"); });
  both([&](Client& c) { return c.delete_commit(c1); });
  both([&](Client& c) { return c.merge("master", "master"); });
  both([&](Client& c) { return c.revert("master", c1); });
  both([&](Client& c) { return c.diff(Ref::any("nope"), M); });
  both([&](Client& c) {
    std::string out;
    auto sink = Sink::to_string(&out);
    return c.get_file(M, "d", *sink);
  });
  both([&](Client& c) {
    auto src = Source::from_string("x");
    return c.put_file("master", "d/a/under-a-file", *src);
  });
}
