// datums.h: the datums of a pipeline's input (Pachyderm 2.x semantics):
// globs matched against a branch's tree, cross and union, datum ids. Pure
// functions: the caller lists the files, the engine runs the datums.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <pfs/pipelines.h>

namespace pfs::detail::jobs {

// A file of a branch: its path relative to the root ('/'-separated, no
// leading '/'), its content hash (hex; opaque here) and size.
struct InputFile {
  std::string path;
  std::string hash;
  std::uint64_t size = 0;
};

// What one pfs input contributes to a datum. `root` is the matched path
// ("" for the root); `files` are the files at or below it, sorted by path,
// with their full paths.
struct DatumPart {
  std::string input;  // the pfs input's name
  std::string root;
  std::vector<InputFile> files;
  std::string repo;  // the branch the files come from (not part of the id: the name and contents are)
};

struct Datum {
  std::string id;  // datum_id(parts): 32 lower-case hex digits
  std::vector<DatumPart> parts;
};

// Pachyderm's glob (gobwas/glob with '/' as separator): true when `pattern`
// matches `path` (a file or directory path without leading '/', "" being
// the root). `*` is any run of characters but '/', `?` one character but
// '/', `[abc]`, `[a-z]`, `[!a-z]`, `[^a-z]` one character but '/', `**` any
// run of characters, `{a,b}` alternatives (nested), `\x` the character x.
// Characters are UTF-8 code points. The pattern's leading '/' is the root
// (added when missing); a trailing '/' is ignored, but "/" itself matches
// the root, and only "/" does. An invalid pattern (valid_glob) matches
// nothing. Time: O(pattern x path), whatever the pattern.
bool glob_match(std::string_view pattern, std::string_view path);

// False for a pattern glob_match cannot read: an unclosed '[' or '{', an
// empty class, a reversed range ("[z-a]"), a trailing lone backslash.
bool valid_glob(std::string_view pattern);

// The datums of `input` (kPfs, kCross, kUnion, nested). files_of(repo)
// gives the files of a repo's tree (every regular file, recursively),
// sorted by path (byte-wise; an unsorted list is sorted here). A pfs
// input's name is its `name`, or its `repo` when that is empty.
//  - pfs: one datum per path of the tree (the root, each directory, each
//    file) that the glob matches and that holds a file, in path order.
//    Overlapping matches are each a datum, as in Pachyderm.
//  - cross: every combination of one datum of each input, the first input
//    varying slowest; none when an input has none.
//  - union: the datums of each input in turn, a datum whose id came
//    before skipped.
// Throws kInvalidArgument for an invalid glob (naming it).
std::vector<Datum> make_datums(const PipelineInput& input,
                               const std::function<const std::vector<InputFile>&(const std::string& repo)>& files_of);

// The id of a datum from its parts: the first 32 hex digits of the SHA-256
// of an unambiguous serialization of each part's input name and root, and
// of each file's path, size and hash.
std::string datum_id(const std::vector<DatumPart>& parts);

}  // namespace pfs::detail::jobs
