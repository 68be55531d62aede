// datums.cc: the datums of a pipeline's input: Pachyderm's glob (compiled
// to a small NFA and run without backtracking), the matched paths of a
// tree, cross and union, and datum ids (SHA-256).
#include "datums.h"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <unordered_set>

#include "fail.h"

namespace pfs::detail::jobs {

namespace {

// Invalid UTF-8 bytes become code points past Unicode, one per byte, so
// that a name that is not UTF-8 still matches itself (and `?` takes one).
constexpr char32_t kRawByte = 0x110000;

// The code point at s[i], advancing i.
char32_t next_code_point(std::string_view s, std::size_t& i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char lead = b(i);
  std::size_t len = lead < 0x80 ? 1 : lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3
                                  : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
  if (len == 1) return s[i++] & 0x7F;
  if (len == 0 || i + len > s.size()) return kRawByte + b(i++);
  char32_t cp = lead & (0x7F >> len);
  for (std::size_t k = 1; k < len; k++) {
    if ((b(i + k) & 0xC0) != 0x80) return kRawByte + b(i++);
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  i += len;
  return cp;
}

// A compiled glob: a program of a Thompson NFA over code points. Every
// state is kept at most once per step, so a match takes O(pattern x path)
// time, however many `*` and `**` the pattern has.
class Glob {
 public:
  explicit Glob(std::string_view pattern) {
    std::string p;
    // (push_back, not `p = "/"`: GCC 12 with -fsanitize=address warns of a
    // memcpy overlap that cannot happen, -Wrestrict.)
    if (pattern.empty() || pattern[0] != '/') p.push_back('/');
    p.append(pattern);
    // A trailing '/' is ignored (not an escaped one, nor the root's own).
    while (p.size() > 1 && p.back() == '/' && !escaped(p, p.size() - 1)) p.pop_back();
    root_only_ = p == "/";
    for (std::size_t i = 0; i < p.size();) pattern_.push_back(next_code_point(p, i));
    compile_seq(false);  // outside braces, ',' and '}' are literal: it reads to the end
    emit({Op::kMatch});
    pattern_.clear();
  }

  bool valid() const { return valid_; }

  // `path`: without leading '/', "" being the root.
  bool match(std::string_view path) {
    if (!valid_) return false;
    if (path.empty()) return root_only_;
    if (root_only_) return false;
    if (mark_.size() != prog_.size()) mark_.assign(prog_.size(), 0);
    cur_.clear();
    next_generation();
    add(cur_, 0);
    step('/');
    for (std::size_t i = 0; i < path.size() && !cur_.empty();) step(next_code_point(path, i));
    for (int pc : cur_)
      if (prog_[pc].op == Op::kMatch) return true;
    return false;
  }

 private:
  enum class Op { kChar, kAnyButSlash, kAny, kClass, kSplit, kJmp, kFail, kMatch };
  struct Inst {
    Op op;
    char32_t c = 0;
    int x = 0, y = 0;  // kSplit: both; kJmp: x; kClass: x is the class
  };
  struct Class {
    bool negated = false;
    std::vector<std::pair<char32_t, char32_t>> ranges;
    bool has(char32_t c) const {
      if (c == '/') return false;
      bool in = std::any_of(ranges.begin(), ranges.end(), [c](auto& r) { return c >= r.first && c <= r.second; });
      return in != negated;
    }
  };

  static bool escaped(const std::string& s, std::size_t i) {
    std::size_t n = 0;
    while (i > n && s[i - n - 1] == '\\') n++;
    return n % 2 == 1;
  }

  int emit(Inst in) {
    prog_.push_back(in);
    return static_cast<int>(prog_.size()) - 1;
  }
  bool more() const { return pos_ < pattern_.size(); }

  // A sequence, up to the end of the pattern or (in braces) a ',' or '}'.
  void compile_seq(bool in_brace) {
    while (more() && valid_) {
      char32_t c = pattern_[pos_];
      if (in_brace && (c == ',' || c == '}')) return;
      pos_++;
      if (c == '*') {
        bool super = more() && pattern_[pos_] == '*';
        if (super) pos_++;
        int loop = emit({Op::kSplit});
        emit({super ? Op::kAny : Op::kAnyButSlash});
        emit({Op::kJmp, 0, loop});
        prog_[loop].x = loop + 1;
        prog_[loop].y = loop + 3;
      } else if (c == '?') {
        emit({Op::kAnyButSlash});
      } else if (c == '[') {
        compile_class();
      } else if (c == '{') {
        compile_braces();
      } else if (c == '\\') {
        if (!more()) {
          valid_ = false;
          return;
        }
        emit({Op::kChar, pattern_[pos_++]});
      } else {
        emit({Op::kChar, c});
      }
    }
  }

  // After '{': alternatives, each a sequence, up to the matching '}'.
  void compile_braces() {
    std::vector<int> to_end;
    for (;;) {
      int split = emit({Op::kSplit});
      prog_[split].x = split + 1;
      compile_seq(true);
      if (!valid_) return;
      if (!more()) {
        valid_ = false;
        return;
      }
      to_end.push_back(emit({Op::kJmp}));
      prog_[split].y = static_cast<int>(prog_.size());
      if (pattern_[pos_++] == '}') break;
    }
    emit({Op::kFail});  // where the last alternative's split would go on
    for (int j : to_end) prog_[j].x = static_cast<int>(prog_.size());
  }

  // After '[': [abc], [a-z], [!a-z], [^a-z]; '\' escapes inside too.
  void compile_class() {
    Class cls;
    if (more() && (pattern_[pos_] == '!' || pattern_[pos_] == '^')) cls.negated = true, pos_++;
    auto one = [&](char32_t& out) {
      if (!more()) return false;
      out = pattern_[pos_++];
      if (out == '\\') {
        if (!more()) return false;
        out = pattern_[pos_++];
      }
      return true;
    };
    for (;;) {
      if (!more()) {
        valid_ = false;
        return;
      }
      if (pattern_[pos_] == ']') {
        pos_++;
        break;
      }
      char32_t lo = 0, hi = 0;
      if (!one(lo)) {
        valid_ = false;
        return;
      }
      hi = lo;
      if (pos_ + 1 < pattern_.size() && pattern_[pos_] == '-' && pattern_[pos_ + 1] != ']') {
        pos_++;
        if (!one(hi) || hi < lo) {
          valid_ = false;
          return;
        }
      }
      cls.ranges.emplace_back(lo, hi);
    }
    if (cls.ranges.empty()) {
      valid_ = false;
      return;
    }
    classes_.push_back(std::move(cls));
    emit({Op::kClass, 0, static_cast<int>(classes_.size()) - 1});
  }

  // Adds pc and every state it reaches without a character (once per step).
  void add(std::vector<int>& list, int pc) {
    stack_.assign(1, pc);
    while (!stack_.empty()) {
      int s = stack_.back();
      stack_.pop_back();
      if (mark_[s] == generation_) continue;
      mark_[s] = generation_;
      const Inst& in = prog_[s];
      if (in.op == Op::kSplit) {
        stack_.push_back(in.y);
        stack_.push_back(in.x);
      } else if (in.op == Op::kJmp) {
        stack_.push_back(in.x);
      } else if (in.op != Op::kFail) {
        list.push_back(s);
      }
    }
  }

  // A fresh mark for the list about to be built.
  void next_generation() {
    if (++generation_ == UINT32_MAX) std::fill(mark_.begin(), mark_.end(), 0), generation_ = 1;
  }

  void step(char32_t c) {
    next_generation();
    next_.clear();
    for (int pc : cur_) {
      const Inst& in = prog_[pc];
      bool takes = in.op == Op::kChar ? in.c == c
                   : in.op == Op::kAnyButSlash ? c != '/'
                   : in.op == Op::kAny       ? true
                   : in.op == Op::kClass     ? classes_[in.x].has(c)
                                             : false;
      if (takes) add(next_, pc + 1);
    }
    cur_.swap(next_);
  }

  std::vector<char32_t> pattern_;  // while compiling
  std::size_t pos_ = 0;
  bool valid_ = true;
  bool root_only_ = false;
  std::vector<Inst> prog_;
  std::vector<Class> classes_;
  // Scratch of match(): the states of this step and the next, and which
  // states the list being built has (mark_[s] == generation_).
  std::vector<int> cur_, next_, stack_;
  std::vector<std::uint32_t> mark_;
  std::uint32_t generation_ = 0;
};

bool by_path(const InputFile& a, const InputFile& b) { return a.path < b.path; }

// The files at or below `root` of sorted `files`: the file `root` itself,
// then the contiguous run of paths starting with "root/".
std::vector<InputFile> files_under(const std::vector<InputFile>& files, std::string_view root) {
  if (root.empty()) return files;
  auto lower = [&](const std::string& key) {
    return std::lower_bound(files.begin(), files.end(), key,
                            [](const InputFile& f, const std::string& k) { return f.path < k; });
  };
  std::string key(root);
  auto self = lower(key);
  std::vector<InputFile> out;
  for (; self != files.end() && self->path == key; ++self) out.push_back(*self);
  key += '/';
  auto first = lower(key);
  key.back() = '/' + 1;
  out.insert(out.end(), first, lower(key));
  return out;
}

std::vector<Datum> pfs_datums(const PipelineInput& input,
                              const std::function<const std::vector<InputFile>&(const std::string&)>& files_of) {
  Glob glob(input.glob);
  if (!glob.valid())
    failf(ErrorCode::kInvalidArgument, "input \"{}\": glob \"{}\" is not valid (an unclosed '[' or '{{', an "
          "empty class, a reversed range or a trailing backslash)", input.name.empty() ? input.repo : input.name,
          input.glob);
  const std::vector<InputFile>* files = &files_of(input.repo);
  std::vector<InputFile> sorted;
  if (!std::is_sorted(files->begin(), files->end(), by_path)) {
    sorted = *files;
    std::sort(sorted.begin(), sorted.end(), by_path);
    files = &sorted;
  }
  if (files->empty()) return {};
  // Every path of the tree, sorted: the root, each file, each directory
  // above one. The files of a directory are contiguous, so a file brings
  // new directories only past where it parts from the file before it.
  std::vector<std::string_view> dirs;
  std::string_view before;
  for (const auto& f : *files) {
    std::string_view p = f.path;
    std::size_t common = std::mismatch(p.begin(), p.begin() + std::min(p.size(), before.size()), before.begin()).first -
                         p.begin();
    for (auto slash = p.find('/', common); slash != std::string_view::npos; slash = p.find('/', slash + 1))
      dirs.push_back(p.substr(0, slash));
    before = p;
  }
  std::sort(dirs.begin(), dirs.end());
  std::vector<std::string_view> paths{""};
  paths.reserve(1 + dirs.size() + files->size());
  auto dir = dirs.begin();
  for (const auto& f : *files) {
    for (; dir != dirs.end() && *dir < f.path; ++dir) paths.push_back(*dir);
    if (dir != dirs.end() && *dir == f.path) ++dir;  // a file that is also a directory: once
    paths.push_back(f.path);
  }
  paths.insert(paths.end(), dir, dirs.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());

  std::vector<Datum> out;
  for (std::string_view root : paths) {
    if (!glob.match(root)) continue;
    DatumPart part{input.name.empty() ? input.repo : input.name, std::string(root), files_under(*files, root), input.repo};
    if (part.files.empty()) continue;
    Datum d;
    d.parts.push_back(std::move(part));
    d.id = datum_id(d.parts);
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<Datum> cross_datums(const PipelineInput& input,
                                const std::function<const std::vector<InputFile>&(const std::string&)>& files_of) {
  std::vector<std::vector<Datum>> sides;
  for (const auto& in : input.inputs) {
    sides.push_back(make_datums(in, files_of));
    if (sides.back().empty()) return {};
  }
  if (sides.empty()) return {};
  std::vector<Datum> out;
  std::vector<std::size_t> at(sides.size(), 0);  // an odometer, the last input turning fastest
  for (;;) {
    Datum d;
    for (std::size_t i = 0; i < sides.size(); i++) {
      const auto& parts = sides[i][at[i]].parts;
      d.parts.insert(d.parts.end(), parts.begin(), parts.end());
    }
    d.id = datum_id(d.parts);
    out.push_back(std::move(d));
    std::size_t i = sides.size();
    while (i > 0 && ++at[i - 1] == sides[i - 1].size()) at[--i] = 0;
    if (i == 0) return out;
  }
}

std::vector<Datum> union_datums(const PipelineInput& input,
                                const std::function<const std::vector<InputFile>&(const std::string&)>& files_of) {
  std::vector<Datum> out;
  std::unordered_set<std::string> seen;
  for (const auto& in : input.inputs)
    for (auto& d : make_datums(in, files_of))
      if (seen.insert(d.id).second) out.push_back(std::move(d));
  return out;
}

// Feeds SHA-256 through a buffer: a datum may hold many small fields.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    if (!ctx_ || !EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr))
      fail(ErrorCode::kInternal, "SHA-256 of a datum failed");
  }
  void number(std::uint64_t n) {
    char le[8];
    for (int i = 0; i < 8; i++) le[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
    buf_.append(le, 8);
    if (buf_.size() >= 1 << 16) flush();
  }
  // Length-prefixed, so that no two different field lists read alike.
  void field(std::string_view s) {
    number(s.size());
    buf_.append(s);
    if (buf_.size() >= 1 << 16) flush();
  }
  std::string hex(std::size_t digits) {
    flush();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!EVP_DigestFinal_ex(ctx_.get(), md, &len)) fail(ErrorCode::kInternal, "SHA-256 of a datum failed");
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < digits / 2 && i < len; i++) out += kHex[md[i] >> 4], out += kHex[md[i] & 0xF];
    return out;
  }

 private:
  void flush() {
    if (!buf_.empty() && !EVP_DigestUpdate(ctx_.get(), buf_.data(), buf_.size()))
      fail(ErrorCode::kInternal, "SHA-256 of a datum failed");
    buf_.clear();
  }
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
  std::string buf_;
};

}  // namespace

bool glob_match(std::string_view pattern, std::string_view path) { return Glob(pattern).match(path); }

bool valid_glob(std::string_view pattern) { return Glob(pattern).valid(); }

std::vector<Datum> make_datums(const PipelineInput& input,
                               const std::function<const std::vector<InputFile>&(const std::string& repo)>& files_of) {
  switch (input.kind) {
    case PipelineInput::Kind::kPfs: return pfs_datums(input, files_of);
    case PipelineInput::Kind::kCross: return cross_datums(input, files_of);
    case PipelineInput::Kind::kUnion: return union_datums(input, files_of);
  }
  return {};
}

std::string datum_id(const std::vector<DatumPart>& parts) {
  Sha256 h;
  h.number(parts.size());
  for (const auto& part : parts) {
    h.field(part.input);
    h.field(part.root);
    h.number(part.files.size());
    for (const auto& f : part.files) {
      h.field(f.path);
      h.number(f.size);
      h.field(f.hash);
    }
  }
  return h.hex(32);
}

}  // namespace pfs::detail::jobs
