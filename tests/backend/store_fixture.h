// store_fixture.h: what every file of the store conformance suite shares:
// the Store fixture, the client under test, and the macros and helpers the
// cases use. The suite checks every Client operation through the public API
// only, on a real store. Each case gets a fresh store under $PFS_TEST_ROOT of
// the backend $PFS_TEST_BACKEND, reached through the client $PFS_TEST_CLIENT:
// "local" (open_store, the default) or "remote" (a pfs::Server of that store
// in this process, on 127.0.0.1 and a free port, and pfs::connect to it), so
// one suite checks that both clients keep one contract. The functions are
// defined in store_fixture.cc, which also holds the suite's main.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <pfs/pfs.h>

namespace fs = std::filesystem;
using namespace pfs;

// The backend under test: "btrfs" or "portable" ($PFS_TEST_BACKEND).
std::string backend_name();
bool on_btrfs();
// A new, unused path under $PFS_TEST_ROOT, named after `tag`.
std::string unique_dir(const std::string& tag);
// Whether the client under test is a remote one ($PFS_TEST_CLIENT=remote).
bool remote();

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
  Connection(const std::string& dir, const OpenOptions& opts);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();
  Client* get() const { return client_.get(); }
  Client& operator*() const { return *client_; }
  Client* operator->() const { return client_.get(); }

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::unique_ptr<Client> client_;  // reset before the server stops
};

// A new store of the backend under test; returns where it is.
std::string new_store(const std::string& tag);

// A fresh store and the client under test of it, with shorthands that
// REQUIRE each call to succeed.
struct Store {
  std::string path;
  Connection c;
  explicit Store(const std::string& tag = "store") : path(new_store(tag)), c(path, {}) {}
  Client* operator->() { return c.get(); }

  void put(const std::string& path_in_tree, const std::string& data,
           const std::string& branch = "master");
  std::string get(const Ref& ref, const std::string& p);
  std::string commit(const std::string& branch = "master", const std::string& msg = "");
  // The paths under `dir`, directories with a trailing slash.
  std::vector<std::string> paths(const Ref& ref, const std::string& dir = "",
                                 bool recursive = true);
  // CHECK that fsck finds no problems and no leftovers.
  void check_fsck();
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

inline const Ref M = Ref::branch("master");

// Where the backend keeps the tree of a branch or commit ("branches" or
// "commits"): btrfs/<kind>/<name> (a subvolume) or portable/<kind>/<name> (a
// ref file).
std::string tree_path(const Store& s, const std::string& kind, const std::string& name);

// `n` pseudo-random bytes, the same for the same seed.
std::string random_bytes(std::size_t n, unsigned seed);
