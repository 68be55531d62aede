// receive.cc: applies a btrfs send stream to a model of the tree in memory,
// then puts the result into a WorkTree.
//
// Why a model: a stream names files by paths that change as it goes
// (btrfs send creates new entries under temporary names, renames them into
// place, moves directories, and links one inode at several paths), and a
// hostile stream may try to reach outside its tree. Replaying it on nodes
// in memory -- each directory loaded from the base tree only when the stream
// touches it, each changed file's bytes in a scratch file of the work tree
// -- means no stream path is ever resolved by the file system: a path that
// passes through a symbolic link, a missing directory or a file is an
// error, and ".." and absolute paths were refused by the reader already.
// At the end, only the directories the stream touched are compared with
// the base, and their changes put into the work tree by name.
#include <fcntl.h>
#include <unistd.h>

#include <list>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>

#include "names.h"
#include "replication.h"

namespace pfs::detail {
namespace {

using stream::Cmd;
using stream::Command;

// A file's bytes: an inode's, shared by all its names.
struct FileData {
  std::uint64_t size = 0;
  std::uint64_t scratch = 0;  // its scratch file once its bytes changed (0: none)
  // Where the bytes are in the base tree (until changed); empty for a file
  // the stream made.
  std::optional<std::string> base_path;
  std::string identity;    // the base entry's
  std::uint64_t links = 1;  // the base inode's names
};

struct Node {
  enum class Kind : std::uint8_t { kDir, kFile, kOther };
  Kind kind = Kind::kFile;
  // Where the node was in the base tree; empty for a node the stream made.
  std::optional<std::string> base_path;
  // A directory: its entries (read from the base when first needed).
  bool loaded = false;
  std::map<std::string, std::shared_ptr<Node>> kids;
  // A file: its bytes.
  std::shared_ptr<FileData> file;
};
using NodePtr = std::shared_ptr<Node>;

class Applier {
 public:
  Applier(TreeReader& base, WorkTree& work, const Command& first)
      : base_(base), work_(work), self_uuid_(first.uuid) {
    if (first.cmd == Cmd::kSnapshot) {
      incremental_ = true;
      parent_uuid_ = first.clone_uuid;
    }
    root_ = std::make_shared<Node>();
    root_->kind = Node::Kind::kDir;
    root_->base_path = "";
    by_base_[""] = root_;
  }

  void apply(const Command& c) {
    cmd_ = &c;
    switch (c.cmd) {
      case Cmd::kMkfile: make(c.path, Node::Kind::kFile); break;
      case Cmd::kMkdir: make(c.path, Node::Kind::kDir); break;
      case Cmd::kMknod:
      case Cmd::kMkfifo:
      case Cmd::kMksock:
      case Cmd::kSymlink: make(c.path, Node::Kind::kOther); break;
      case Cmd::kRename: rename(c.path, c.path_to); break;
      case Cmd::kLink: link(c.path, c.path_link); break;
      case Cmd::kUnlink: unlink(c.path); break;
      case Cmd::kRmdir: rmdir(c.path); break;
      case Cmd::kWrite: write(c); break;
      case Cmd::kClone: clone(c); break;
      case Cmd::kTruncate: truncate(c); break;
      // pfs keeps no owners, modes, times or extended attributes; the
      // path must still exist.
      case Cmd::kSetXattr:
      case Cmd::kRemoveXattr:
      case Cmd::kChmod:
      case Cmd::kChown:
      case Cmd::kUtimes: must(c.path); break;
      case Cmd::kUpdateExtent:
        bad("the stream has no file data (made with btrfs send --no-data); pfs needs the data");
      case Cmd::kSubvol:
      case Cmd::kSnapshot:
      case Cmd::kEnd: break;  // the reader allows these only first and last
    }
  }

  AppliedStream finish(const TreeStats& base_stats) {
    cmd_ = nullptr;
    files_ = static_cast<std::int64_t>(base_stats.files);
    bytes_ = static_cast<std::int64_t>(base_stats.bytes);
    check_names("", *root_);  // before anything is written
    sync_dir("", *root_);
    AppliedStream out;
    if (files_ < 0 || bytes_ < 0) fail(ErrorCode::kInternal, "receive: negative tree figures");
    out.stats = {static_cast<std::uint64_t>(files_), static_cast<std::uint64_t>(bytes_)};
    out.skipped = std::move(skipped_);
    return out;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    if (cmd_)
      failf(ErrorCode::kInvalidArgument, "send stream: command {} ({}) at byte {}: {}",
            cmd_->index, stream::cmd_name(cmd_->cmd), cmd_->offset, what);
    failf(ErrorCode::kInvalidArgument, "send stream: {}", what);
  }

  void load(Node& d) {
    if (d.loaded) return;
    d.loaded = true;
    if (!d.base_path) return;
    auto& listed = base_lists_[*d.base_path];
    listed = base_.list(*d.base_path);
    for (auto& e : listed) {
      auto n = std::make_shared<Node>();
      n->base_path = e.info.path;
      if (e.info.type == FileInfo::Type::kDirectory) {
        n->kind = Node::Kind::kDir;
      } else {
        n->kind = Node::Kind::kFile;
        n->file = std::make_shared<FileData>();
        n->file->size = e.info.size;
        n->file->base_path = e.info.path;
        n->file->identity = e.identity;
        n->file->links = e.links;
      }
      by_base_[e.info.path] = n;
      d.kids.emplace(path_base(e.info.path), std::move(n));
    }
  }

  // The node that was at `path` in the base, wherever it is now (nullptr
  // when it is gone).
  NodePtr node_of_base(const std::string& path) {
    auto it = by_base_.find(path);
    if (it != by_base_.end()) return it->second.lock();
    if (path.empty()) return nullptr;
    NodePtr dir = node_of_base(path_parent(path));
    if (!dir || dir->kind != Node::Kind::kDir || dir->loaded) return nullptr;
    load(*dir);
    it = by_base_.find(path);
    return it == by_base_.end() ? nullptr : it->second.lock();
  }

  // A base inode with several names (btrfs hard links) that the stream
  // changes through one name changes under all: their nodes share its
  // bytes from now on. Finding the other names takes one walk of the base.
  void join_links(const std::shared_ptr<FileData>& d) {
    if (!links_) {
      links_.emplace();
      std::vector<std::string> todo{""};
      while (!todo.empty()) {
        std::string dir = std::move(todo.back());
        todo.pop_back();
        for (auto& e : base_.list(dir)) {
          if (e.info.type == FileInfo::Type::kDirectory)
            todo.push_back(e.info.path);
          else if (e.links > 1 && !e.identity.empty())
            (*links_)[e.identity].push_back(e.info.path);
        }
      }
    }
    auto it = links_->find(d->identity);
    if (it == links_->end()) return;
    for (const auto& p : it->second) {
      NodePtr other = node_of_base(p);
      if (other && other->kind == Node::Kind::kFile && other->file != d &&
          !other->file->scratch && other->file->base_path == p)
        other->file = d;
    }
  }

  // The node at `path` ("" is the root), or nullptr when there is none.
  NodePtr find(const std::string& path) {
    NodePtr cur = root_;
    if (path.empty()) return cur;
    std::size_t start = 0;
    for (;;) {
      std::size_t slash = path.find('/', start);
      std::string name = path.substr(start, slash == std::string::npos ? slash : slash - start);
      if (cur->kind == Node::Kind::kOther) {
        bad(fmt::format("\"{}\" passes through \"{}\", a symbolic link or special file", path,
                        path.substr(0, start - 1)));
      }
      if (cur->kind != Node::Kind::kDir) {
        bad(fmt::format("\"{}\" passes through \"{}\", which is not a directory", path,
                        path.substr(0, start - 1)));
      }
      load(*cur);
      auto it = cur->kids.find(name);
      if (it == cur->kids.end()) return nullptr;
      cur = it->second;
      if (slash == std::string::npos) return cur;
      start = slash + 1;
    }
  }

  NodePtr must(const std::string& path) {
    NodePtr n = find(path);
    if (!n) bad(fmt::format("\"{}\" does not exist", path));
    return n;
  }

  // The directory that holds `path`, loaded.
  Node& parent_of(const std::string& path) {
    std::string dir = path_parent(path);
    NodePtr d = find(dir);
    if (!d) bad(fmt::format("the directory of \"{}\" does not exist", path));
    if (d->kind == Node::Kind::kOther)
      bad(fmt::format("\"{}\" is a symbolic link or special file: nothing is made through it",
                      dir));
    if (d->kind != Node::Kind::kDir) bad(fmt::format("\"{}\" is not a directory", dir));
    load(*d);
    return *d;
  }

  void make(const std::string& path, Node::Kind kind) {
    Node& dir = parent_of(path);
    std::string name = path_base(path);
    if (dir.kids.count(name)) bad(fmt::format("\"{}\" exists already", path));
    auto n = std::make_shared<Node>();
    n->kind = kind;
    n->loaded = true;
    if (kind == Node::Kind::kFile) n->file = std::make_shared<FileData>();
    dir.kids.emplace(name, std::move(n));
  }

  void rename(const std::string& from, const std::string& to) {
    NodePtr src = must(from);
    if (from == to) return;
    if (src->kind == Node::Kind::kDir) {  // not into itself
      for (std::string d = to; !d.empty(); d = path_parent(d))
        if (find(d) == src) bad(fmt::format("\"{}\" cannot move into itself (\"{}\")", from, to));
    }
    Node& to_dir = parent_of(to);
    std::string to_name = path_base(to);
    auto old = to_dir.kids.find(to_name);
    if (old != to_dir.kids.end()) {
      if (old->second == src) return;  // two names of one file: rename(2) leaves both
      Node& o = *old->second;
      bool src_dir = src->kind == Node::Kind::kDir, o_dir = o.kind == Node::Kind::kDir;
      if (src_dir != o_dir)
        bad(fmt::format("renaming \"{}\" onto \"{}\" would replace a {} by a {}", from, to,
                        o_dir ? "directory" : "file", src_dir ? "directory" : "file"));
      if (o_dir) {
        load(o);
        if (!o.kids.empty()) bad(fmt::format("renaming onto \"{}\", which is not empty", to));
      }
    }
    Node& from_dir = parent_of(from);
    from_dir.kids.erase(path_base(from));
    to_dir.kids[to_name] = std::move(src);
  }

  void link(const std::string& path, const std::string& target) {
    NodePtr t = must(target);
    if (t->kind == Node::Kind::kDir) bad(fmt::format("\"{}\" is a directory: no hard link", target));
    Node& dir = parent_of(path);
    std::string name = path_base(path);
    if (dir.kids.count(name)) bad(fmt::format("\"{}\" exists already", path));
    dir.kids.emplace(name, std::move(t));
  }

  void unlink(const std::string& path) {
    NodePtr n = must(path);
    if (n->kind == Node::Kind::kDir) bad(fmt::format("\"{}\" is a directory (rmdir it)", path));
    parent_of(path).kids.erase(path_base(path));
  }

  void rmdir(const std::string& path) {
    NodePtr n = must(path);
    if (n == root_) bad("the root cannot be removed");
    if (n->kind != Node::Kind::kDir) bad(fmt::format("\"{}\" is not a directory", path));
    load(*n);
    if (!n->kids.empty()) bad(fmt::format("directory \"{}\" is not empty", path));
    parent_of(path).kids.erase(path_base(path));
  }

  FileData& file(const std::string& path) {
    NodePtr n = must(path);
    if (n->kind != Node::Kind::kFile) bad(fmt::format("\"{}\" is not a regular file", path));
    if (n->file->links > 1 && !n->file->scratch) join_links(n->file);
    return *n->file;
  }

  // The scratch file holding the file's bytes, made (from the base's
  // bytes, a reflink where the file system can) when first needed.
  int data(FileData& n) {
    if (n.scratch) return open_scratch(n.scratch, false);
    std::uint64_t id = next_scratch_++;
    int fd = open_scratch(id, true);
    if (n.base_path) {
      auto in = base_.open_file(*n.base_path);
      if (in->fd() >= 0) {
        copy_fd(in->fd(), fd);
      } else {
        std::vector<char> buf(1 << 20);
        for (std::uint64_t off = 0;;) {
          std::size_t got = in->pread(buf, off);
          if (got == 0) break;
          pwrite_all(fd, buf.data(), got, off);
          off += got;
        }
      }
    }
    n.scratch = id;
    return fd;
  }

  // Scratch files stay open while used; a few at a time (a stream writes
  // one file after another, and there may be millions).
  int open_scratch(std::uint64_t id, bool create) {
    auto it = open_.find(id);
    if (it != open_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second.get();
    }
    if (open_.size() >= kOpenFiles) {
      open_.erase(lru_.back().first);
      lru_.pop_back();
    }
    lru_.emplace_front(id, work_.open_scratch(id, create));
    open_[id] = lru_.begin();
    return lru_.front().second.get();
  }

  void pwrite_all(int fd, const char* p, std::size_t n, std::uint64_t off) {
    while (n > 0) {
      ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail_errno(errno, "write a received file");
      p += w;
      n -= static_cast<std::size_t>(w);
      off += static_cast<std::uint64_t>(w);
    }
  }

  void write(const Command& c) {
    FileData& n = file(c.path);
    int fd = data(n);
    pwrite_all(fd, c.data.data(), c.data.size(), c.file_offset);
    n.size = std::max(n.size, c.file_offset + c.data.size());
  }

  void truncate(const Command& c) {
    FileData& n = file(c.path);
    int fd = data(n);
    if (::ftruncate(fd, static_cast<off_t>(c.size)) != 0) fail_errno(errno, "truncate");
    n.size = c.size;
  }

  // Copies bytes from a file of this stream's tree (as it is now) or of the
  // parent's tree (as it was): the two subvolumes a stream may clone from.
  void clone(const Command& c) {
    FileData& dst = file(c.path);
    std::unique_ptr<FileReader> from_base;
    FileData* src = nullptr;
    std::uint64_t src_size = 0;
    if (c.clone_uuid == self_uuid_) {
      src = &file(c.clone_path);
      src_size = src->size;
    } else if (incremental_ && c.clone_uuid == parent_uuid_) {
      auto e = base_.stat(c.clone_path);
      if (!e || e->info.type != FileInfo::Type::kFile)
        bad(fmt::format("clone source \"{}\" is not a file of the parent", c.clone_path));
      from_base = base_.open_file(c.clone_path);
      src_size = from_base->size();
    } else {
      bad(fmt::format("clones from subvolume {}, which is neither this one nor its parent",
                      id_of_uuid(c.clone_uuid)));
    }
    if (c.clone_offset > src_size || c.clone_len > src_size - c.clone_offset)
      bad(fmt::format("clone range {}+{} is past the end of \"{}\" ({} bytes)", c.clone_offset,
                      c.clone_len, c.clone_path, src_size));
    if (c.clone_len == 0) return;
    int out = data(dst);
    // src's data() may evict dst's descriptor: read through its own.
    std::vector<char> buf(std::min<std::uint64_t>(c.clone_len, 1 << 20));
    std::uint64_t done = 0;
    while (done < c.clone_len) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), c.clone_len - done));
      std::size_t got = 0;
      if (from_base) {
        got = from_base->pread(std::span<char>(buf.data(), want), c.clone_offset + done);
      } else if (src->scratch || !src->base_path) {
        int in = data(*src);
        ssize_t r = ::pread(in, buf.data(), want, static_cast<off_t>(c.clone_offset + done));
        if (r < 0) fail_errno(errno, "read a received file");
        got = static_cast<std::size_t>(r);
      } else {
        auto in = base_.open_file(*src->base_path);
        got = in->pread(std::span<char>(buf.data(), want), c.clone_offset + done);
      }
      if (got == 0) bad(fmt::format("clone source \"{}\" ended early", c.clone_path));
      out = data(dst);
      pwrite_all(out, buf.data(), got, c.file_offset + done);
      done += got;
    }
    dst.size = std::max(dst.size, c.file_offset + c.clone_len);
  }

  // ---- the end: put what changed into the work tree

  void sub(const Entry& e) {
    if (e.info.type == FileInfo::Type::kDirectory) {
      TreeStats t = count_tree(work_.reader(), e.info.path);
      files_ -= static_cast<std::int64_t>(t.files);
      bytes_ -= static_cast<std::int64_t>(t.bytes);
    } else {
      files_ -= 1;
      bytes_ -= static_cast<std::int64_t>(e.info.size);
    }
  }

  void check_name(const std::string& p) {
    try {
      normalize_path(p);
    } catch (const Fail& f) {
      bad(fmt::format("the tree it makes holds a name pfs refuses: {}", f.error.message));
    }
  }

  // The names of every directory the stream touched (the others are the
  // base's, checked when it was made).
  void check_names(const std::string& path, Node& d) {
    if (!d.loaded) return;
    for (auto& [name, kid] : d.kids) {
      std::string p = path_join(path, name);
      check_name(p);
      if (kid->kind == Node::Kind::kDir) check_names(p, *kid);
    }
  }

  // `fresh`: the work tree's directory at path was just made (empty).
  void sync_dir(const std::string& path, Node& d, bool fresh = false) {
    if (!d.loaded && d.base_path && *d.base_path == path) return;  // untouched, in place
    load(d);
    // What the work tree has there: nothing, or, when it is the base's
    // directory of that path (not yet changed: this runs top-down), the
    // listing read when the node was loaded.
    std::map<std::string, Entry> have;
    if (!fresh) {
      auto cached = d.base_path && *d.base_path == path ? base_lists_.find(path) : base_lists_.end();
      for (auto& e : cached != base_lists_.end() ? cached->second : work_.reader().list(path))
        have.emplace(path_base(e.info.path), e);
    }
    for (auto& [name, e] : have) {
      if (d.kids.count(name)) continue;
      sub(e);
      work_.remove(e.info.path);
    }
    for (auto& [name, kid] : d.kids) {
      std::string p = path_join(path, name);
      auto h = have.find(name);
      const Entry* w = h == have.end() ? nullptr : &h->second;
      switch (kid->kind) {
        case Node::Kind::kOther:
          if (w) {
            sub(*w);
            work_.remove(p);
          }
          skipped_.push_back(p);
          break;
        case Node::Kind::kDir:
          if (w && w->info.type != FileInfo::Type::kDirectory) {
            sub(*w);
            work_.remove(p);
            w = nullptr;
          }
          if (!w) work_.make_dir(p);
          sync_dir(p, *kid, !w);
          break;
        case Node::Kind::kFile: {
          FileData& f = *kid->file;
          if (w && w->info.type == FileInfo::Type::kFile && !f.scratch && f.base_path == p)
            break;  // the base's file, where it was
          if (w) sub(*w);
          if (f.scratch || !f.base_path) {
            if (!f.scratch) data(f);  // a new, empty file
            work_.place_scratch(f.scratch, p);
          } else {
            work_.copy_file_from(base_, *f.base_path, p);
          }
          files_ += 1;
          bytes_ += static_cast<std::int64_t>(f.size);
          break;
        }
      }
    }
  }

  static constexpr std::size_t kOpenFiles = 64;

  TreeReader& base_;
  WorkTree& work_;
  stream::Uuid self_uuid_, parent_uuid_{};
  bool incremental_ = false;
  NodePtr root_;
  const Command* cmd_ = nullptr;
  std::uint64_t next_scratch_ = 1;
  std::list<std::pair<std::uint64_t, UniqueFd>> lru_;
  std::unordered_map<std::uint64_t, std::list<std::pair<std::uint64_t, UniqueFd>>::iterator> open_;
  std::int64_t files_ = 0, bytes_ = 0;
  std::vector<std::string> skipped_;
  // Nodes by their path in the base; base files with several names.
  std::unordered_map<std::string, std::weak_ptr<Node>> by_base_;
  std::unordered_map<std::string, std::vector<Entry>> base_lists_;  // directories loaded
  std::optional<std::unordered_map<std::string, std::vector<std::string>>> links_;
};

}  // namespace

AppliedStream apply_stream(stream::StreamReader& in, const stream::Command& first,
                           TreeReader& base, const TreeStats& base_stats, WorkTree& work) {
  Applier a(base, work, first);
  Command c;
  while (in.next(c)) a.apply(c);
  return a.finish(base_stats);
}

}  // namespace pfs::detail
