// btrfs_send.cc: a commit's tree as the kernel's own send stream
// (BTRFS_IOC_SEND): a pipe, a thread that hands the pipe's bytes to the
// sink, and the ioctl.
#include <fcntl.h>
#include <linux/btrfs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>

#include "btrfs.h"

namespace pfs::detail {

bool send_commit_native(int commits_fd, const std::string& id, const std::string& parent,
                        Sink& out) {
  UniqueFd snap = open_dir_if_exists(commits_fd, id);
  if (!snap) failf(ErrorCode::kNotFound, "the tree of commit {} is missing (run pachctl fsck)", id);
  std::uint64_t parent_root = 0;
  if (!parent.empty()) {
    UniqueFd p = open_dir_if_exists(commits_fd, parent);
    if (!p)
      failf(ErrorCode::kNotFound, "the tree of commit {} is missing (run pachctl fsck)", parent);
    if (auto err = btrfs_util_subvolume_id_fd(p.get(), &parent_root))
      fail_btrfs(err, "find the subvolume of commit " + parent);
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    fail_errno(errno, "make a pipe for the btrfs send of commit " + id);
  UniqueFd rd(fds[0]), wr(fds[1]);
  (void)::fcntl(wr.get(), F_SETPIPE_SZ, 1 << 20);
  // The kernel writes into the pipe; this thread hands its bytes to the
  // sink. When the sink fails, the thread keeps draining the pipe (so the
  // kernel finishes) but stops writing.
  std::atomic<std::uint64_t> forwarded{0};
  std::optional<Error> sink_error;
  std::thread pump([&] {
    std::vector<char> buf(1 << 20);
    for (;;) {
      ssize_t n = ::read(rd.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (sink_error) continue;
      auto r = out.write(std::span<const char>(buf.data(), static_cast<std::size_t>(n)));
      if (!r) sink_error = r.error();
      forwarded += static_cast<std::uint64_t>(n);
    }
  });
  struct btrfs_ioctl_send_args args {};
  args.send_fd = wr.get();
  args.parent_root = parent_root;
  args.clone_sources_count = parent.empty() ? 0 : 1;
  __u64 clone_source = parent_root;
  args.clone_sources = parent.empty() ? nullptr : &clone_source;
  args.flags = BTRFS_SEND_FLAG_VERSION;
  args.version = 1;
  int rc = ::ioctl(snap.get(), BTRFS_IOC_SEND, &args);
  int err = errno;
  wr.reset();
  pump.join();
  if (rc != 0) {
    if ((err == EPERM || err == EACCES || err == ENOTTY || err == EINVAL) && forwarded == 0)
      return false;  // not root, or an old kernel: the Store writes the stream
    fail_errno(err, "btrfs send of commit " + id);
  }
  if (sink_error) throw Fail{*sink_error};
  return true;
}

}  // namespace pfs::detail
