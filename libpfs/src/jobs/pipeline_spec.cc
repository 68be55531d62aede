// pipeline_spec.cc: Pachyderm 2.x pipeline specs: parse_pipeline() and its
// checks (durations, globs, names, quantities), the canonical JSON
// (pipeline_json), the branches a spec reads, run and datum state names.
#include "pipeline_spec.h"

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <limits>
#include <set>
#include <string>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pfs/pipelines.h>

#include "fail.h"
#include "names.h"
#include "spec.h"

namespace pfs::detail::jobs {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

// Reads the digits at the front of `s` into `n` (false on overflow).
bool take_digits(std::string_view& s, std::uint64_t& n, std::size_t& count) {
  n = 0;
  count = 0;
  while (!s.empty() && is_digit(s.front())) {
    auto d = static_cast<std::uint64_t>(s.front() - '0');
    if (n > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    n = n * 10 + d;
    s.remove_prefix(1);
    count++;
  }
  return true;
}

constexpr std::uint64_t kPow10[] = {1,         10,         100,         1000,         10000,
                                    100000,    1000000,    10000000,    100000000,    1000000000};

}  // namespace

std::chrono::seconds parse_duration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    failf(ErrorCode::kInvalidArgument,
          "\"{}\" is not a duration: {} (write e.g. \"30s\", \"5m\", \"1h30m\", \"1.5h\", or seconds: \"90\")",
          text, why);
  };
  // Go's time.Duration is int64 nanoseconds: its limit is ours.
  constexpr std::uint64_t kMaxNs = std::numeric_limits<std::int64_t>::max();
  constexpr std::uint64_t kSecond = 1000000000;
  if (text.empty()) bad("it is empty");
  std::string_view s = text;
  if (s.front() == '-') bad("it is negative");
  if (s.front() == '+') s.remove_prefix(1);
  if (s.empty()) bad("it has no number");
  std::uint64_t total = 0;
  bool first = true;
  while (!s.empty()) {
    std::uint64_t whole = 0, frac = 0;
    std::size_t whole_digits = 0, frac_digits = 0;
    if (!take_digits(s, whole, whole_digits)) bad("it is too long (Go's limit is 2562047h)");
    std::size_t point_digits = 0;
    if (!s.empty() && s.front() == '.') {
      s.remove_prefix(1);
      // Nine decimals reach a nanosecond of a second; Go drops what is below one.
      for (; !s.empty() && is_digit(s.front()); s.remove_prefix(1), point_digits++)
        if (frac_digits < 9) frac = frac * 10 + static_cast<std::uint64_t>(s.front() - '0'), frac_digits++;
    }
    if (whole_digits == 0 && point_digits == 0) bad("expected a number before each unit");
    std::size_t unit_len = 0;
    while (unit_len < s.size() && !is_digit(s[unit_len]) && s[unit_len] != '.') unit_len++;
    std::string_view unit = s.substr(0, unit_len);
    s.remove_prefix(unit_len);
    std::uint64_t ns = 0;
    if (unit.empty()) {
      if (!first || !s.empty()) bad("a number has no unit (h, m, s, ms, us or ns)");
      ns = kSecond;  // a bare number: seconds
    } else if (unit == "ns") {
      ns = 1;
    } else if (unit == "us" || unit == "\u00b5s" || unit == "\u03bcs") {
      ns = 1000;
    } else if (unit == "ms") {
      ns = 1000000;
    } else if (unit == "s") {
      ns = kSecond;
    } else if (unit == "m") {
      ns = 60 * kSecond;
    } else if (unit == "h") {
      ns = 3600 * kSecond;
    } else {
      bad(fmt::format("\"{}\" is not a unit (use h, m, s, ms, us or ns)", unit));
    }
    first = false;
    if (whole > kMaxNs / ns) bad("it is too long (Go's limit is 2562047h)");
    std::uint64_t term = whole * ns;
    // ns and 10^frac_digits are powers of ten times 1, 60 or 3600: one divides the other.
    std::uint64_t scale = kPow10[frac_digits];
    term += ns % scale == 0 ? frac * (ns / scale) : frac / (scale / ns);
    if (term > kMaxNs - total) bad("it is too long (Go's limit is 2562047h)");
    total += term;
  }
  if (total % kSecond != 0) bad("it is not a whole number of seconds");
  return std::chrono::seconds(static_cast<std::int64_t>(total / kSecond));
}

void check_glob(std::string_view glob) {
  auto bad = [&](std::string_view why) {
    failf(ErrorCode::kInvalidArgument,
          "\"{}\" is not a glob: {} (write e.g. \"/\", \"/*\", \"/*/*\" or \"/data/*.csv\": a path from the "
          "root of the input's branch)",
          glob, why);
  };
  if (glob.empty()) bad("it is empty");
  if (glob.size() > 4096) bad("it is longer than 4096 bytes");
  for (char c : glob)
    if (is_control(c)) bad("it contains a NUL, a newline or another control character");
  if (!valid_utf8(glob)) bad("it is not valid UTF-8");
  if (glob.front() != '/') bad("it does not start with '/'");
  if (glob == "/") return;
  for (const std::string& part : split_path(glob.substr(1))) {
    if (part.empty()) bad("it has an empty component (\"//\", or a '/' at the end)");
    if (part == "." || part == "..") bad("it has a \".\" or \"..\" component");
    for (std::size_t i = 0; i < part.size();) {
      if (part[i] == '\\') {
        if (i + 1 == part.size()) bad("a backslash escapes nothing (it ends a component)");
        i += 2;
      } else if (part[i] == '[') {
        // As fnmatch reads a class: a ']' first (after '!' or '^') is one of its characters.
        std::size_t j = i + 1;
        if (j < part.size() && (part[j] == '!' || part[j] == '^')) j++;
        if (j < part.size() && part[j] == ']') j++;
        while (j < part.size() && part[j] != ']') j += part[j] == '\\' ? 2 : 1;
        if (j >= part.size()) bad("a '[' is not closed by a ']' in its component");
        i = j + 1;
      } else {
        i++;
      }
    }
  }
}

void check_pipeline_name(std::string_view what, std::string_view name) {
  auto bad = [&](std::string_view why) {
    failf(ErrorCode::kInvalidArgument,
          "{}: \"{}\" is not a valid pipeline name: {} (use 1 to 63 letters, digits, '_' and '-', starting "
          "with a letter or a digit)",
          what, name, why);
  };
  if (name.empty()) bad("it is empty");
  if (name.size() > 63) bad("it is longer than 63 characters");
  if (name.front() == '_' || name.front() == '-') bad("it starts with '_' or '-'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-';
    if (!ok) bad("it contains a character other than letters, digits, '_' and '-'");
  }
  // It names the output branch too: whatever the store refuses, refuse here
  // (a subset today; this keeps it one if the store's rule tightens).
  try {
    check_branch_name(name);
  } catch (Fail& f) {
    f.error.message = fmt::format("{}: {}", what, f.error.message);
    throw;
  }
}

std::uint64_t parse_quantity_bytes(std::string_view text) {
  auto bad = [&](std::string_view why) {
    failf(ErrorCode::kInvalidArgument,
          "\"{}\" is not a memory size: {} (give bytes, or a number with Ki, Mi, Gi, Ti (powers of 1024) or "
          "K, M, G, T (powers of 1000), e.g. \"512Mi\", \"1.5G\")",
          text, why);
  };
  std::string_view s = text;
  std::uint64_t whole = 0, frac = 0;
  std::size_t whole_digits = 0, frac_digits = 0;
  if (!take_digits(s, whole, whole_digits)) bad("it is too large");
  if (!s.empty() && s.front() == '.') {
    s.remove_prefix(1);
    if (!take_digits(s, frac, frac_digits) || frac_digits > 6) bad("it has more than 6 decimals");
  }
  if (whole_digits == 0 && frac_digits == 0) bad("it does not start with a number");
  static constexpr struct {
    std::string_view suffix;
    std::uint64_t factor;
  } kUnits[] = {
      {"", 1},
      {"K", 1000},           {"M", 1000000},        {"G", 1000000000},     {"T", 1000000000000},
      {"Ki", 1ull << 10},    {"Mi", 1ull << 20},    {"Gi", 1ull << 30},    {"Ti", 1ull << 40},
      {"k", 1ull << 10},     {"m", 1ull << 20},     {"g", 1ull << 30},     {"t", 1ull << 40},
  };
  std::uint64_t factor = 0;
  for (const auto& u : kUnits)
    if (u.suffix == s) factor = u.factor;
  if (factor == 0) bad(fmt::format("\"{}\" is not a unit", s));
  if (whole > std::numeric_limits<std::uint64_t>::max() / factor) bad("it is too large");
  std::uint64_t bytes = whole * factor;
  // frac < 10^6 and factor <= 2^40: the product fits. Kubernetes rounds a
  // fraction of a byte up.
  std::uint64_t scale = kPow10[frac_digits];
  std::uint64_t part = (frac * factor + scale - 1) / scale;
  if (part > std::numeric_limits<std::uint64_t>::max() - bytes) bad("it is too large");
  return bytes + part;
}

double parse_cpu(std::string_view text) {
  auto bad = [&](std::string_view why) {
    failf(ErrorCode::kInvalidArgument,
          "\"{}\" is not a number of CPUs: {} (write e.g. \"0.5\", \"2\", or millicores: \"500m\")", text, why);
  };
  std::string_view s = text;
  if (!s.empty() && s.back() == 'm') {
    s.remove_suffix(1);
    std::uint64_t milli = 0;
    std::size_t digits = 0;
    if (!take_digits(s, milli, digits) || digits == 0 || !s.empty() || digits > 9)
      bad("millicores are a whole number before the 'm'");
    return static_cast<double>(milli) / 1000;
  }
  // std::from_chars also takes "inf", "1e3" and "-1": check the grammar first.
  std::size_t digits = 0, point = 0;
  for (char c : s) {
    if (is_digit(c)) digits++;
    else if (c == '.') point++;
    else bad("it is not a decimal number");
  }
  if (digits == 0 || point > 1) bad("it is not a decimal number");
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) bad("it is not a decimal number");
  return v;
}

}  // namespace pfs::detail::jobs

namespace pfs::detail::jobs {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxInputDepth = 16;
constexpr std::size_t kMaxPfsInputs = 64;
constexpr std::uint64_t kMinMemory = 8ull << 20;  // as parse_job: less cannot start a container
constexpr std::uint64_t kMaxMemory = 1ull << 50;

std::string field(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
}

std::string_view kind_of(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number with a fraction";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "something else";
  }
}

[[noreturn]] void wrong_type(std::string_view path, std::string_view expected, const json& v) {
  failf(ErrorCode::kInvalidArgument, "{}: must be {}, not {}", path, expected, kind_of(v));
}

// Refuses a field of `obj` not in `known`; `has` lists them for the message.
void only_fields(const json& obj, std::string_view path, std::initializer_list<std::string_view> known,
                 std::string_view has) {
  for (const auto& [key, v] : obj.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end())
      failf(ErrorCode::kInvalidArgument, "unknown field \"{}\": {}; remove it", field(path, key), has);
  }
}

const json* optional(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

const json& required(const json& obj, std::string_view path, std::string_view key, std::string_view what) {
  const json* v = optional(obj, key);
  if (!v) failf(ErrorCode::kInvalidArgument, "{}: missing ({})", field(path, key), what);
  return *v;
}

std::string string_at(const json& v, std::string_view path) {
  if (!v.is_string()) wrong_type(path, "a string", v);
  return v.get<std::string>();
}

// Runs fn, starting the message of what it throws with `path`, instead of
// `strip` (the prefix a helper of spec.h puts there itself).
template <class Fn>
auto at(std::string_view path, Fn&& fn, std::string_view strip = {}) {
  try {
    return fn();
  } catch (Fail& f) {
    std::string& m = f.error.message;
    if (!strip.empty() && m.rfind(strip, 0) == 0) m.erase(0, strip.size());
    m = fmt::format("{}: {}", path, m);
    throw;
  }
}

std::uint32_t integer_at(const json& v, std::string_view path, std::uint32_t lo, std::uint32_t hi,
                         std::string_view unit) {
  if (!v.is_number_integer())
    failf(ErrorCode::kInvalidArgument, "{}: must be an integer from {} to {} ({}), not {}", path, lo, hi, unit,
          kind_of(v));
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() < lo || v.get<std::uint64_t>() > hi)
    failf(ErrorCode::kInvalidArgument, "{}: {} is out of range: give {} to {} ({})", path, v.dump(), lo, hi,
          unit);
  return static_cast<std::uint32_t>(v.get<std::uint64_t>());
}

std::chrono::seconds duration_at(const json& v, std::string_view path) {
  if (!v.is_string()) wrong_type(path, "a duration string such as \"30s\", \"5m\" or \"1h30m\"", v);
  return at(path, [&] { return parse_duration(v.get<std::string>()); });
}

bool env_name_ok(std::string_view k) {
  if (k.empty() || is_digit(k.front())) return false;
  for (char c : k)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_')) return false;
  return true;
}

void check_repo(std::string_view repo) {
  check_branch_name(repo);
  if (repo.front() == '_')
    failf(ErrorCode::kInvalidArgument,
          "invalid branch name \"{}\": it starts with '_' (Pachyderm reserves such names)", repo);
}

void check_input_name(std::string_view path, std::string_view name) {
  auto bad = [&](std::string_view why) {
    failf(ErrorCode::kInvalidArgument,
          "{}: \"{}\" cannot name an input: {} (it is the input's folder under /pfs/: use 1 to 100 letters, "
          "digits, '.', '_' and '-', not starting with '.')",
          path, name, why);
  };
  if (name.empty()) bad("it is empty");
  if (name.size() > 100) bad("it is longer than 100 characters");
  if (name.front() == '.') bad("it starts with '.'");
  if (name == "out") bad("/pfs/out is where the pipeline writes its output; give the input another \"name\"");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' || c == '_' ||
              c == '-';
    if (!ok) bad("it contains a character other than letters, digits, '.', '_' and '-'");
  }
}

PipelineInput parse_input_object(const json& v, const std::string& path, std::size_t depth,
                                 std::size_t& pfs_inputs) {
  if (depth > kMaxInputDepth)
    failf(ErrorCode::kInvalidArgument, "{}: inputs are nested more than {} deep", path, kMaxInputDepth);
  if (!v.is_object()) wrong_type(path, "an object with one of pfs, cross and union", v);
  only_fields(v, path, {"pfs", "cross", "union"},
              "an input is one of pfs, cross and union (pfs has no join, group, cron or git inputs)");
  if (v.size() != 1)
    failf(ErrorCode::kInvalidArgument, "{}: must have exactly one of pfs, cross and union, not {}", path,
          v.empty() ? "none" : "several");
  PipelineInput in;
  if (const json* pfs = optional(v, "pfs")) {
    std::string p = field(path, "pfs");
    if (++pfs_inputs > kMaxPfsInputs)
      failf(ErrorCode::kInvalidArgument, "{}: a spec may have at most {} pfs inputs", p, kMaxPfsInputs);
    if (!pfs->is_object()) wrong_type(p, "an object with repo and glob", *pfs);
    only_fields(*pfs, p, {"repo", "branch", "glob", "name"},
                "a pfs input has repo and glob, and optionally branch and name");
    in.kind = PipelineInput::Kind::kPfs;
    std::string rp = field(p, "repo");
    in.repo = string_at(required(*pfs, p, "repo", "the repo it reads: a branch of pfs"), rp);
    at(rp, [&] { check_repo(in.repo); });
    if (const json* b = optional(*pfs, "branch")) {
      std::string bp = field(p, "branch");
      in.branch = string_at(*b, bp);
      if (!in.branch.empty() && in.branch != "master")
        failf(ErrorCode::kInvalidArgument,
              "{}: \"{}\": a Pachyderm repo is a pfs branch, which has no branches of its own; give \"master\" "
              "or leave branch out, and name the pfs branch to read in repo",
              bp, in.branch);
    }
    std::string gp = field(p, "glob");
    in.glob = string_at(required(*pfs, p, "glob", "which files make a datum, e.g. \"/*\""), gp);
    at(gp, [&] { check_glob(in.glob); });
    std::string np = field(p, "name");
    if (const json* n = optional(*pfs, "name")) {
      in.name = string_at(*n, np);
      check_input_name(np, in.name);
    } else {
      in.name = in.repo;
      check_input_name(np + " (absent: the repo's name)", in.name);
    }
    return in;
  }
  bool cross = v.contains("cross");
  in.kind = cross ? PipelineInput::Kind::kCross : PipelineInput::Kind::kUnion;
  std::string p = field(path, cross ? "cross" : "union");
  const json& list = v.at(cross ? "cross" : "union");
  if (!list.is_array()) wrong_type(p, "an array of inputs", list);
  if (list.empty()) failf(ErrorCode::kInvalidArgument, "{}: is empty (give it at least one input)", p);
  for (std::size_t i = 0; i < list.size(); i++)
    in.inputs.push_back(parse_input_object(list[i], fmt::format("{}[{}]", p, i), depth + 1, pfs_inputs));
  return in;
}

// The names `in` mounts under /pfs/. Checks that the members of a cross
// mount different ones (a union's members are mounted one at a time), and
// that no input reads the pipeline's own output.
std::set<std::string> check_inputs(const PipelineInput& in, const std::string& path, const std::string& pipeline) {
  std::set<std::string> names;
  if (in.kind == PipelineInput::Kind::kPfs) {
    if (in.repo == pipeline)
      failf(ErrorCode::kInvalidArgument,
            "{}.pfs.repo: pipeline \"{}\" cannot read its own output (branch \"{}\"); read another branch",
            path, pipeline, in.repo);
    names.insert(in.name);
    return names;
  }
  bool cross = in.kind == PipelineInput::Kind::kCross;
  std::string p = field(path, cross ? "cross" : "union");
  for (std::size_t i = 0; i < in.inputs.size(); i++) {
    for (const std::string& n : check_inputs(in.inputs[i], fmt::format("{}[{}]", p, i), pipeline))
      if (!names.insert(n).second && cross)
        failf(ErrorCode::kInvalidArgument,
              "{}: two of its inputs are named \"{}\" and would both be mounted at /pfs/{}; give one of them "
              "another \"name\"",
              p, n, n);
  }
  return names;
}

void parse_transform(const json& t, PipelineSpec& s) {
  if (!t.is_object()) wrong_type("transform", "an object with image and cmd", t);
  only_fields(t, "transform", {"image", "cmd", "stdin", "env"},
              "a transform has image and cmd, and optionally stdin and env");
  s.image = string_at(required(t, "transform", "image", "the container image to run, e.g. \"localhost/edges:1\""),
                      "transform.image");
  at("transform.image", [&] { check_image_ref(s.image); }, "image: ");
  const json& cmd = required(t, "transform", "cmd", "the command to run, e.g. [\"python3\", \"/edges.py\"]");
  if (cmd.is_string()) {
    s.cmd = at("transform.cmd", [&] { return split_command(cmd.get<std::string>()); }, "command: ");
  } else if (cmd.is_array()) {
    for (std::size_t i = 0; i < cmd.size(); i++) s.cmd.push_back(string_at(cmd[i], fmt::format("transform.cmd[{}]", i)));
  } else {
    wrong_type("transform.cmd", "an array of strings (or a string)", cmd);
  }
  if (s.cmd.empty() || s.cmd[0].empty())
    fail(ErrorCode::kInvalidArgument,
         "transform.cmd: is empty (name the program to run, e.g. [\"python3\", \"/edges.py\"])");
  for (const auto& w : s.cmd)
    if (w.find('\0') != std::string::npos)
      fail(ErrorCode::kInvalidArgument, "transform.cmd: contains a NUL character");
  if (const json* in = optional(t, "stdin")) {
    if (!in->is_array()) wrong_type("transform.stdin", "an array of strings (the lines fed to cmd)", *in);
    for (std::size_t i = 0; i < in->size(); i++)
      s.stdin_lines.push_back(string_at((*in)[i], fmt::format("transform.stdin[{}]", i)));
  }
  if (const json* env = optional(t, "env")) {
    if (!env->is_object()) wrong_type("transform.env", "an object of strings (name: value)", *env);
    for (const auto& [k, v] : env->items()) {
      std::string p = field("transform.env", k);
      if (!env_name_ok(k))
        failf(ErrorCode::kInvalidArgument,
              "{}: \"{}\" is not a variable name (use letters, digits and '_', not starting with a digit)", p, k);
      std::string value = string_at(v, p);
      if (value.find('\0') != std::string::npos)
        failf(ErrorCode::kInvalidArgument, "{}: contains a NUL character", p);
      s.env[k] = std::move(value);
    }
  }
}

void parse_resource_limits(const json& r, PipelineSpec& s) {
  if (!r.is_object()) wrong_type("resource_limits", "an object with memory and cpu", r);
  only_fields(r, "resource_limits", {"memory", "cpu"}, "resource_limits has memory and cpu");
  if (const json* m = optional(r, "memory")) {
    if (m->is_string()) {
      s.memory = at("resource_limits.memory", [&] { return parse_quantity_bytes(m->get<std::string>()); });
    } else if (m->is_number_unsigned()) {
      s.memory = m->get<std::uint64_t>();
    } else if (m->is_number_integer()) {
      failf(ErrorCode::kInvalidArgument, "resource_limits.memory: {} is negative", m->dump());
    } else {
      wrong_type("resource_limits.memory", "a size such as \"512Mi\" or \"1G\", or an integer of bytes", *m);
    }
    if (s.memory != 0 && s.memory < kMinMemory)
      failf(ErrorCode::kInvalidArgument,
            "resource_limits.memory: {} bytes is too little to start a container; give at least 8Mi", s.memory);
    if (s.memory > kMaxMemory)
      failf(ErrorCode::kInvalidArgument, "resource_limits.memory: {} bytes is more than 1Pi", s.memory);
  }
  if (const json* c = optional(r, "cpu")) {
    if (c->is_number()) s.cpu = c->get<double>();
    else if (c->is_string()) s.cpu = at("resource_limits.cpu", [&] { return parse_cpu(c->get<std::string>()); });
    else wrong_type("resource_limits.cpu", "a number of CPUs such as 0.5, or a string such as \"500m\"", *c);
    if (!(s.cpu > 0) || s.cpu > 1024)
      failf(ErrorCode::kInvalidArgument,
            "resource_limits.cpu: {} is out of range: give more than 0 and at most 1024 CPUs (leave cpu out "
            "for no limit)",
            c->dump());
  }
}

PipelineSpec parse_spec(std::string_view text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    failf(ErrorCode::kInvalidArgument, "the pipeline spec is not JSON: {}", e.what());
  }
  if (!j.is_object())
    failf(ErrorCode::kInvalidArgument,
          "the pipeline spec must be a JSON object with pipeline, transform and input, not {}", kind_of(j));
  only_fields(j, "",
              {"pipeline", "description", "transform", "input", "parallelism_spec", "datum_tries",
               "datum_timeout", "job_timeout", "resource_limits", "reprocess_spec"},
              "a pipeline spec has pipeline, transform and input, and optionally description, "
              "parallelism_spec, datum_tries, datum_timeout, job_timeout, resource_limits and reprocess_spec");
  PipelineSpec s;
  const json& p = required(j, "", "pipeline", "{\"name\": NAME}");
  if (!p.is_object()) wrong_type("pipeline", "an object with name", p);
  only_fields(p, "pipeline", {"name"}, "pipeline has only name");
  s.name = string_at(required(p, "pipeline", "name", "the pipeline's name, also its output branch"),
                     "pipeline.name");
  check_pipeline_name("pipeline.name", s.name);
  if (const json* d = optional(j, "description")) s.description = string_at(*d, "description");
  parse_transform(required(j, "", "transform", "{\"image\": IMAGE, \"cmd\": [PROGRAM, ARGS...]}"), s);
  std::size_t pfs_inputs = 0;
  s.input = parse_input_object(
      required(j, "", "input", "what the pipeline reads, e.g. {\"pfs\": {\"repo\": \"images\", \"glob\": \"/*\"}}"),
      "input", 1, pfs_inputs);
  check_inputs(s.input, "input", s.name);
  if (const json* ps = optional(j, "parallelism_spec")) {
    if (!ps->is_object()) wrong_type("parallelism_spec", "an object with constant", *ps);
    only_fields(*ps, "parallelism_spec", {"constant"}, "parallelism_spec has only constant");
    if (const json* c = optional(*ps, "constant"))
      s.parallelism = integer_at(*c, "parallelism_spec.constant", 1, 64, "containers at once");
  }
  if (const json* t = optional(j, "datum_tries")) s.datum_tries = integer_at(*t, "datum_tries", 1, 100, "tries");
  if (const json* t = optional(j, "datum_timeout")) s.datum_timeout = duration_at(*t, "datum_timeout");
  if (const json* t = optional(j, "job_timeout")) s.job_timeout = duration_at(*t, "job_timeout");
  if (const json* r = optional(j, "resource_limits")) parse_resource_limits(*r, s);
  if (const json* r = optional(j, "reprocess_spec")) {
    std::string v = string_at(*r, "reprocess_spec");
    if (v == "until_success") s.reprocess = ReprocessSpec::kUntilSuccess;
    else if (v == "every_job") s.reprocess = ReprocessSpec::kEveryJob;
    else
      failf(ErrorCode::kInvalidArgument, "reprocess_spec: \"{}\" is neither \"until_success\" nor \"every_job\"",
            v);
  }
  return s;
}

nlohmann::ordered_json input_json(const PipelineInput& in) {
  nlohmann::ordered_json j;
  if (in.kind == PipelineInput::Kind::kPfs) {
    auto& p = j["pfs"];
    p["name"] = in.name;
    p["repo"] = in.repo;
    if (!in.branch.empty()) p["branch"] = in.branch;
    p["glob"] = in.glob;
    return j;
  }
  auto& list = j[in.kind == PipelineInput::Kind::kCross ? "cross" : "union"];
  list = nlohmann::ordered_json::array();
  for (const auto& sub : in.inputs) list.push_back(input_json(sub));
  return j;
}

void collect_repos(const PipelineInput& in, std::vector<std::string>& out) {
  if (in.kind == PipelineInput::Kind::kPfs) out.push_back(in.repo);
  for (const auto& sub : in.inputs) collect_repos(sub, out);
}

}  // namespace
}  // namespace pfs::detail::jobs

namespace pfs {

Result<PipelineSpec> parse_pipeline(std::string_view json_text) {
  return detail::guard([&] {
    try {
      return detail::jobs::parse_spec(json_text);
    } catch (detail::Fail& f) {
      f.error.message += "; see docs/pipelines.md";
      throw;
    }
  });
}

std::string pipeline_json(const PipelineSpec& s) {
  nlohmann::ordered_json j;
  j["pipeline"]["name"] = s.name;
  if (!s.description.empty()) j["description"] = s.description;
  auto& t = j["transform"];
  t["image"] = s.image;
  t["cmd"] = s.cmd;
  if (!s.stdin_lines.empty()) t["stdin"] = s.stdin_lines;
  if (!s.env.empty()) t["env"] = s.env;
  j["input"] = detail::jobs::input_json(s.input);
  j["parallelism_spec"]["constant"] = s.parallelism;
  j["datum_tries"] = s.datum_tries;
  if (s.datum_timeout.count() != 0) j["datum_timeout"] = fmt::format("{}s", s.datum_timeout.count());
  if (s.job_timeout.count() != 0) j["job_timeout"] = fmt::format("{}s", s.job_timeout.count());
  if (s.memory != 0) j["resource_limits"]["memory"] = s.memory;
  if (s.cpu != 0) j["resource_limits"]["cpu"] = s.cpu;
  j["reprocess_spec"] = s.reprocess == ReprocessSpec::kEveryJob ? "every_job" : "until_success";
  // NOTE: a spec parse_pipeline made holds valid UTF-8 only; one built by
  // hand may not, and dump() would throw on it.
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::vector<std::string> pipeline_inputs(const PipelineSpec& spec) {
  std::vector<std::string> repos;
  detail::jobs::collect_repos(spec.input, repos);
  std::sort(repos.begin(), repos.end());
  repos.erase(std::unique(repos.begin(), repos.end()), repos.end());
  return repos;
}

std::string_view pipeline_run_state_name(PipelineRunState s) {
  switch (s) {
    case PipelineRunState::kQueued: return "queued";
    case PipelineRunState::kRunning: return "running";
    case PipelineRunState::kSuccess: return "success";
    case PipelineRunState::kFailure: return "failure";
    case PipelineRunState::kKilled: return "killed";
    case PipelineRunState::kUnrunnable: return "unrunnable";
  }
  return "unknown";
}

std::string_view datum_state_name(DatumState s) {
  switch (s) {
    case DatumState::kPending: return "pending";
    case DatumState::kRunning: return "running";
    case DatumState::kProcessed: return "processed";
    case DatumState::kSkipped: return "skipped";
    case DatumState::kRecovered: return "recovered";
    case DatumState::kFailed: return "failed";
  }
  return "unknown";
}

}  // namespace pfs
