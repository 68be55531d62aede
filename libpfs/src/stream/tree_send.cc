// tree_send.cc: a tree (or the changes between two trees) as a btrfs send
// stream, written the way `btrfs receive` applies it: directories before
// what they hold, each file made, filled and given its mode, and times set
// last (creating entries changes a directory's time).
//
// Files get mode 0644 and directories 0755 (pfs keeps no permissions), the
// modification times the trees hold, and no owner (the receiver's user
// owns what it makes).
#include <cstring>
#include <vector>

#include "names.h"
#include "replication.h"

namespace pfs::detail {

StreamName stream_name_of(const CommitInfo& c) {
  StreamName n;
  n.name = c.id;
  for (std::size_t i = 0; i < n.uuid.size() && 2 * i + 1 < c.id.size(); i++)
    n.uuid[i] = static_cast<std::uint8_t>(std::stoul(c.id.substr(2 * i, 2), nullptr, 16));
  n.ctransid = static_cast<std::uint64_t>(c.time_ns);
  return n;
}

std::string id_of_uuid(const stream::Uuid& u) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (auto b : u) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

namespace {

constexpr std::size_t kBlock = 1 << 20;  // bytes read from a file at once
constexpr std::size_t kCompare = 64 * 1024;  // a changed file is read in pieces this big...
constexpr std::size_t kBlockDiff = 4096;     // ...and compared, and sent, in blocks this big

stream::Timespec timespec_of(std::int64_t ns) {
  if (ns < 0) ns = 0;
  return {static_cast<std::uint64_t>(ns / 1000000000), static_cast<std::uint32_t>(ns % 1000000000)};
}

class TreeSender {
 public:
  TreeSender(TreeReader& tree, stream::StreamWriter& out) : tree_(tree), out_(out) {}

  void create(const Entry& e) {
    const std::string& p = e.info.path;
    if (e.info.type == FileInfo::Type::kDirectory) {
      out_.mkdir(p, next_ino_++);
      out_.chmod(p, 0755);
      for (const auto& kid : tree_.list(p)) create(kid);
    } else {
      out_.mkfile(p, next_ino_++);
      auto in = tree_.open_file(p);
      for (std::uint64_t off = 0;;) {
        std::size_t n = in->pread(buf_, off);
        if (n == 0) break;
        out_.write(p, off, std::span<const char>(buf_.data(), n));
        off += n;
      }
      out_.chmod(p, 0644);
    }
    set_time(e);
  }

  void remove(TreeReader& old, const Entry& e) {
    const std::string& p = e.info.path;
    if (e.info.type == FileInfo::Type::kDirectory) {
      for (const auto& kid : old.list(p)) remove(old, kid);
      out_.rmdir(p);
    } else {
      out_.unlink(p);
    }
  }

  // The changes in directory `dir` from `old` to tree_.
  void diff_dir(TreeReader& old, const std::string& dir) {
    auto a = old.list(dir);
    auto b = tree_.list(dir);
    std::size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
      int c = i == a.size()   ? 1
              : j == b.size() ? -1
                              : path_base(a[i].info.path).compare(path_base(b[j].info.path));
      if (c < 0) {
        remove(old, a[i++]);
      } else if (c > 0) {
        create(b[j++]);
      } else {
        change(old, a[i++], b[j++]);
      }
    }
  }

  void set_time(const Entry& e) {
    auto t = timespec_of(e.info.mtime_ns);
    out_.utimes(e.info.path, t, t, t);
  }

 private:
  static bool same(const Entry& x, const Entry& y) {
    return !x.identity.empty() && x.identity == y.identity;
  }

  void change(TreeReader& old, const Entry& was, const Entry& now) {
    bool was_dir = was.info.type == FileInfo::Type::kDirectory;
    bool is_dir = now.info.type == FileInfo::Type::kDirectory;
    if (was_dir != is_dir) {
      remove(old, was);
      create(now);
      return;
    }
    if (same(was, now)) {
      if (was.info.mtime_ns != now.info.mtime_ns) set_time(now);
      return;
    }
    if (is_dir) {
      diff_dir(old, now.info.path);
      set_time(now);
      return;
    }
    rewrite(old, was, now);
    set_time(now);
  }

  // Sends the 4 KiB blocks of a changed file that differ from its old
  // content (runs of them as one write), read 64 KiB at a time.
  void rewrite(TreeReader& old, const Entry& was, const Entry& now) {
    const std::string& p = now.info.path;
    auto in = tree_.open_file(p);
    auto prev = old.open_file(was.info.path);
    std::uint64_t size = now.info.size, old_size = was.info.size;
    if (old_size > size) out_.truncate(p, size);
    std::vector<char> theirs(kCompare);
    for (std::uint64_t off = 0; off < size;) {
      std::size_t n = in->pread(std::span<char>(buf_.data(), kCompare), off);
      if (n == 0) break;
      std::size_t m = off < old_size ? prev->pread(std::span<char>(theirs.data(), n), off) : 0;
      std::size_t run = 0, run_len = 0;  // a run of differing blocks in buf_
      for (std::size_t b = 0; b < n; b += kBlockDiff) {
        std::size_t len = std::min(kBlockDiff, n - b);
        bool same = b + len <= m && std::memcmp(theirs.data() + b, buf_.data() + b, len) == 0;
        if (!same) {
          if (run_len == 0) run = b;
          run_len += len;
          continue;
        }
        if (run_len) out_.write(p, off + run, std::span<const char>(buf_.data() + run, run_len));
        run_len = 0;
      }
      if (run_len) out_.write(p, off + run, std::span<const char>(buf_.data() + run, run_len));
      off += n;
    }
  }

  TreeReader& tree_;
  stream::StreamWriter& out_;
  std::vector<char> buf_ = std::vector<char>(kBlock);
  std::uint64_t next_ino_ = 257;  // 256 is a subvolume's root
};

}  // namespace

void send_tree(TreeReader& tree, TreeReader* parent, const StreamName& self,
               const StreamName* parent_name, stream::StreamWriter& out) {
  TreeSender s(tree, out);
  if (parent && parent_name) {
    out.snapshot(self.name, self.uuid, self.ctransid, parent_name->uuid, parent_name->ctransid);
    s.diff_dir(*parent, "");
  } else {
    out.subvol(self.name, self.uuid, self.ctransid);
    for (const auto& e : tree.list("")) s.create(e);
  }
  if (auto root = tree.stat("")) s.set_time(*root);
  out.end();
}

}  // namespace pfs::detail
