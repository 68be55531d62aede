// backend.cc: what every backend shares.
#include "backend.h"

#include <unistd.h>

#include <cerrno>

namespace pfs::detail {
namespace {

class FdFileReader final : public FileReader {
 public:
  FdFileReader(UniqueFd fd, std::optional<std::uint64_t> size) : fd_(std::move(fd)) {
    if (size) {
      size_ = *size;
      return;
    }
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) fail_errno_at(errno, "stat", fd_.get());
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  std::uint64_t size() const override { return size_; }
  std::size_t pread(std::span<char> buf, std::uint64_t offset) override {
    for (;;) {
      ssize_t n = ::pread(fd_.get(), buf.data(), buf.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) fail_errno_at(errno, "read", fd_.get());
    }
  }
  int fd() const override { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::uint64_t size_ = 0;
};

}  // namespace

std::unique_ptr<FileReader> file_reader(UniqueFd fd, std::optional<std::uint64_t> size) {
  return std::make_unique<FdFileReader>(std::move(fd), size);
}

TreeStats count_tree(TreeReader& tree, const std::string& dir) {
  TreeStats s;
  for (const auto& e : tree.list(dir)) {
    if (e.info.type == FileInfo::Type::kDirectory) {
      auto sub = count_tree(tree, e.info.path);
      s.files += sub.files;
      s.bytes += sub.bytes;
    } else {
      s.files += 1;
      s.bytes += e.info.size;
    }
  }
  return s;
}

}  // namespace pfs::detail
