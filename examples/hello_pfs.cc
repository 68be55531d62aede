// hello_pfs: the smallest program that uses libpfs. It includes only
// <pfs/...> headers and links libpfs (meson: dependency('libpfs'); anything
// else: pkg-config --cflags --libs libpfs).
//
//   hello_pfs STORE_DIR     creates the store if needed, writes, commits,
//                           branches, reads back, and prints the history.
#include <cstdio>
#include <string>

#include <pfs/pfs.h>

static int die(const pfs::Error& e) {
  std::fprintf(stderr, "hello_pfs: %s\n", e.message.c_str());
  return pfs::exit_status(e.code);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hello_pfs STORE_DIR\n");
    return 2;
  }
  auto opened = pfs::open_store(argv[1]);
  if (!opened && opened.error().code == pfs::ErrorCode::kNotFound) {
    if (auto made = pfs::init_store(argv[1]); !made) return die(made.error());
    opened = pfs::open_store(argv[1]);
  }
  if (!opened) return die(opened.error());
  pfs::Client& store = **opened;

  auto text = pfs::Source::from_string("hello, versioned world\n");
  if (auto r = store.put_file("master", "greeting.txt", *text); !r) return die(r.error());
  auto c = store.commit("master", "say hello");
  if (!c) return die(c.error());

  auto branch = store.create_branch("hello-" + c->id.substr(0, 8), c->id);
  if (!branch) return die(branch.error());
  auto change = pfs::Source::from_string("hello from a branch\n");
  if (auto r = store.put_file(branch->name, "greeting.txt", *change); !r) return die(r.error());

  std::string then, now;
  auto then_sink = pfs::Sink::to_string(&then);
  auto now_sink = pfs::Sink::to_string(&now);
  if (auto r = store.get_file(pfs::Ref::commit(c->id), "greeting.txt", *then_sink); !r)
    return die(r.error());
  if (auto r = store.get_file(pfs::Ref::branch(branch->name), "greeting.txt", *now_sink); !r)
    return die(r.error());
  std::printf("commit %s: %s", c->id.c_str(), then.c_str());
  std::printf("branch %s: %s", branch->name.c_str(), now.c_str());

  auto log = store.list_commits();
  if (!log) return die(log.error());
  std::printf("master has %zu commit(s)\n", log->size());
  return 0;
}
