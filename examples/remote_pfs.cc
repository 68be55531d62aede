// remote_pfs: libpfs against a pfs server (pachctl serve). The same Client
// calls as on a local store; only how the Client is made differs.
//
//   remote_pfs URL [TOKEN]   writes a file on a new branch of the server's
//                            store, commits it, reads a byte range of it
//                            back, and lists the branch's files.
#include <cstdio>
#include <ctime>
#include <string>

#include <pfs/pfs.h>

static int die(const pfs::Error& e) {
  std::fprintf(stderr, "remote_pfs: %s\n", e.message.c_str());
  return pfs::exit_status(e.code);
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: remote_pfs URL [TOKEN]\n");
    return 2;
  }
  pfs::RemoteOptions opts;
  if (argc == 3) opts.token = argv[2];
  auto connected = pfs::connect(argv[1], opts);
  if (!connected) return die(connected.error());
  pfs::Client& server = **connected;

  std::string branch = "remote-" + std::to_string(std::time(nullptr));
  if (auto b = server.create_branch(branch); !b) return die(b.error());
  auto text = pfs::Source::from_string("hello from afar\n");
  if (auto put = server.put_file(branch, "notes/hello.txt", *text); !put) return die(put.error());
  auto commit = server.commit(branch, "written over HTTP");
  if (!commit) return die(commit.error());

  // Bytes 6..9 of the file in the new commit, through a FileHandle.
  auto file = server.open_file(pfs::Ref::commit(commit->id), "notes/hello.txt");
  if (!file) return die(file.error());
  char word[4];
  auto n = (*file)->read_at(6, word);
  if (!n) return die(n.error());
  std::printf("commit %s on %s: bytes 6-9 are \"%.*s\"\n", commit->id.c_str(), branch.c_str(),
              static_cast<int>(*n), word);

  pfs::ListOptions all;
  all.recursive = true;
  auto files = server.list_files(pfs::Ref::branch(branch), ".", all);
  if (!files) return die(files.error());
  for (const auto& f : *files) std::printf("  %s\n", f.path.c_str());
  return 0;
}
