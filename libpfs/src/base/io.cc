#include <pfs/io.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace pfs {
namespace {

class FdSource final : public Source {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  Result<std::size_t> read(std::span<char> buf) override {
    for (;;) {
      ssize_t n = ::read(fd_, buf.data(), buf.size());
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno == EINTR) continue;
      return Error{ErrorCode::kIo, std::string("read input: ") + std::strerror(errno)};
    }
  }
  int fd() const override { return fd_; }

 private:
  int fd_;
};

class StringSource final : public Source {
 public:
  explicit StringSource(std::string s) : s_(std::move(s)) {}
  Result<std::size_t> read(std::span<char> buf) override {
    std::size_t n = std::min(buf.size(), s_.size() - pos_);
    std::memcpy(buf.data(), s_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string s_;
  std::size_t pos_ = 0;
};

class FdSink final : public Sink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  Result<void> write(std::span<const char> data) override {
    const char* p = data.data();
    std::size_t n = data.size();
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Error{ErrorCode::kIo, std::string("write output: ") + std::strerror(errno)};
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return {};
  }
  int fd() const override { return fd_; }

 private:
  int fd_;
};

class StringSink final : public Sink {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  Result<void> write(std::span<const char> data) override {
    out_->append(data.data(), data.size());
    return {};
  }

 private:
  std::string* out_;
};

}  // namespace

std::unique_ptr<Source> Source::from_fd(int fd) { return std::make_unique<FdSource>(fd); }
std::unique_ptr<Source> Source::from_string(std::string bytes) {
  return std::make_unique<StringSource>(std::move(bytes));
}
std::unique_ptr<Sink> Sink::to_fd(int fd) { return std::make_unique<FdSink>(fd); }
std::unique_ptr<Sink> Sink::to_string(std::string* out) {
  return std::make_unique<StringSink>(out);
}

}  // namespace pfs
