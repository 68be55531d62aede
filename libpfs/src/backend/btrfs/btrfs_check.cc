// btrfs_check.cc: the btrfs backend's part of fsck: what pfs trees may
// not hold.
//
// The kernel checksums the data; the Store checks trees and figures.
// Entries that are neither files nor directories have no place in a pfs
// tree: pfs never writes them and never follows them, but one planted in
// a subvolume by hand (a symbolic link, a device, a FIFO) is damage to
// report. Repair removes them from branches' working trees; commits are
// read-only.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "btrfs.h"
#include "names.h"

namespace pfs::detail {
namespace {

void check_tree(int dir, const std::string& rel, const std::string& what, bool working,
                bool repair, FsckReport& r) {
  for (const auto& name : list_dir_names(dir)) {
    if (working && rel.empty() && name.rfind(kReservedPrefix, 0) == 0) continue;
    std::string path = path_join(rel, name);
    auto st = stat_at(dir, name);
    if (!st) continue;  // gone meanwhile
    if (S_ISDIR(st->st_mode)) {
      if (UniqueFd sub = open_beneath(dir, name, O_RDONLY | O_DIRECTORY))
        check_tree(sub.get(), path, what, working, repair, r);
      continue;
    }
    if (S_ISREG(st->st_mode)) continue;
    std::string kind = S_ISLNK(st->st_mode) ? "a symbolic link" : "a special file (device, FIFO or socket)";
    if (repair && working && ::unlinkat(dir, name.c_str(), 0) == 0) {
      r.repaired.push_back(fmt::format("{}: removed \"{}\", {}", what, path, kind));
      continue;
    }
    r.problems.push_back(fmt::format("{}: \"{}\" is {}; pfs trees hold only files and directories "
                                     "(pfs never follows it){}",
                                     what, path, kind,
                                     working ? "; fsck --repair removes it" : "; remove the commit or leave it"));
  }
}

}  // namespace

void check_trees(int commits_fd, int branches_fd, FsckReport& r, bool repair) {
  for (const auto& id : list_dir_names(commits_fd))
    if (UniqueFd fd = open_dir_if_exists(commits_fd, id))
      check_tree(fd.get(), "", fmt::format("commit {}", id.substr(0, 12)), false, false, r);
  for (const auto& b : list_dir_names(branches_fd))
    if (UniqueFd fd = open_dir_if_exists(branches_fd, b))
      check_tree(fd.get(), "", fmt::format("branch \"{}\"", b), true, repair, r);
}

}  // namespace pfs::detail
