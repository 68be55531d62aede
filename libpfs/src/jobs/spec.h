// spec.h: the pieces of a job descriptor that parse_job() checks, for the
// engine and the unit tests: command lines, image references, sizes and
// inputs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <pfs/jobs.h>

namespace pfs::detail::jobs {

// Splits a command line as a POSIX shell splits words: blanks separate;
// '...' is literal; "..." keeps blanks and honours \" \\ \$ \`; a
// backslash outside quotes takes the next character as it is. Nothing is
// expanded ($VAR, globs, ~). Throws kInvalidArgument (an unclosed quote, a
// trailing backslash, no words).
std::vector<std::string> split_command(std::string_view line);

// Checks an image reference: [registry[:port]/]path[:tag][@algo:hex] as
// Docker and OCI write them (lower-case path components, a tag of up to
// 128 word characters, '.' and '-'), or oci-archive:/abs/path[:ref] or
// docker-archive:/abs/path. Throws kInvalidArgument saying what is wrong.
void check_image_ref(std::string_view ref);

// "268435456", "256m", "256MiB", "1g", "64k" (powers of 1024): bytes.
// Throws kInvalidArgument.
std::uint64_t parse_size(std::string_view text);

// A job's input, taken apart.
struct Input {
  enum class Kind { kDir, kJob, kS3 };
  Kind kind = Kind::kDir;
  std::string path;    // kDir: a normalised path, "" for the root; kJob: the job's name
  std::string bucket;  // kS3
  std::string prefix;  // kS3: may be empty
};
// Throws kInvalidArgument.
Input parse_input(std::string_view input);

// The first 16 hex digits of the SHA-256 of `bytes`.
std::string short_hash(std::string_view bytes);

}  // namespace pfs::detail::jobs
