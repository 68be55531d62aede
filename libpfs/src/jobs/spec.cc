// spec.cc: job descriptors: parse_job() and its checks (command lines,
// image references, sizes, inputs), the canonical JSON, run-state names.
#include "spec.h"

#include <openssl/evp.h>

#include <limits>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "fail.h"
#include "names.h"

namespace pfs::detail::jobs {

std::vector<std::string> split_command(std::string_view s) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  for (std::size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(cur)), cur.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (++i == s.size())
        fail(ErrorCode::kInvalidArgument, "command: ends with a lone backslash");
      cur += s[i];
    } else if (c == '\'') {
      auto end = s.find('\'', i + 1);
      if (end == std::string_view::npos)
        fail(ErrorCode::kInvalidArgument, "command: a single quote (') is not closed");
      cur.append(s.substr(i + 1, end - i - 1));
      i = end;
    } else if (c == '"') {
      for (i++;; i++) {
        if (i == s.size())
          fail(ErrorCode::kInvalidArgument, "command: a double quote (\") is not closed");
        if (s[i] == '"') break;
        if (s[i] == '\\' && i + 1 < s.size() && std::string_view("\"\\$`").find(s[i + 1]) != std::string_view::npos)
          i++;
        cur += s[i];
      }
    } else {
      cur += c;
    }
  }
  if (in_word) words.push_back(std::move(cur));
  if (words.empty()) fail(ErrorCode::kInvalidArgument, "command: is empty (name the program that starts the web server)");
  return words;
}

void check_image_ref(std::string_view ref) {
  auto bad = [&](std::string_view why) {
    failf(ErrorCode::kInvalidArgument,
          "image: \"{}\" is not a valid image reference: {} (e.g. localhost/upper:1, "
          "docker.io/library/debian:12, oci-archive:/srv/images/upper.tar)",
          ref, why);
  };
  if (ref.empty()) bad("it is empty");
  if (ref.size() > 512) bad("longer than 512 characters");
  for (char c : ref)
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) bad("it contains a blank or a control character");
  for (std::string_view scheme : {"oci-archive:", "docker-archive:"}) {
    if (ref.substr(0, scheme.size()) != scheme) continue;
    std::string_view path = ref.substr(scheme.size());
    if (path.empty() || path.front() != '/') bad("an archive is named by its absolute path");
    if (path.find("/../") != std::string_view::npos) bad("the archive's path contains \"..\"");
    return;
  }
  // The grammar of github.com/distribution/reference (std::regex would do,
  // but GCC 12 warns inside it under the sanitizers).
  std::string_view name = ref;
  if (auto at = name.find('@'); at != std::string_view::npos) {
    std::string_view digest = name.substr(at + 1);
    name = name.substr(0, at);
    auto colon = digest.find(':');
    if (colon == std::string_view::npos || colon == 0 || digest.size() - colon - 1 < 32 ||
        !std::isalpha(static_cast<unsigned char>(digest[0])))
      bad("the digest is not ALGORITHM:HEX (e.g. sha256:<64 hex digits>)");
    for (char c : digest.substr(0, colon))
      if (!std::isalnum(static_cast<unsigned char>(c)) && std::string_view("-_+.").find(c) == std::string_view::npos)
        bad("the digest's algorithm has a character it may not");
    for (char c : digest.substr(colon + 1))
      if (!std::isxdigit(static_cast<unsigned char>(c))) bad("the digest is not hexadecimal");
  }
  auto last_slash = name.rfind('/');
  auto tag_colon = name.rfind(':');
  if (tag_colon != std::string_view::npos && (last_slash == std::string_view::npos || tag_colon > last_slash)) {
    std::string_view tag = name.substr(tag_colon + 1);
    name = name.substr(0, tag_colon);
    auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    if (tag.empty() || tag.size() > 128 || !word(tag[0])) bad("the tag is empty, too long or starts with '.' or '-'");
    for (char c : tag)
      if (!word(c) && c != '.' && c != '-') bad("the tag has a character other than letters, digits, '_', '.' and '-'");
  }
  if (name.empty()) bad("it names no repository");
  std::vector<std::string_view> parts;
  for (std::size_t i = 0;;) {
    auto j = name.find('/', i);
    parts.push_back(name.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  std::size_t first = 0;
  if (parts.size() > 1) {
    std::string_view d = parts[0];
    bool lower = true;
    for (char c : d) lower &= !(c >= 'A' && c <= 'Z');
    if (d.find_first_of(".:") != std::string_view::npos || d == "localhost" || !lower) {
      // A registry: host[:port], host names of letters, digits and '-'.
      std::string_view host = d.substr(0, d.find(':'));
      if (auto c = d.find(':'); c != std::string_view::npos) {
        std::string_view port = d.substr(c + 1);
        if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos)
          bad("the registry's port is not a number");
      }
      for (std::size_t i = 0;;) {
        auto j = host.find('.', i);
        std::string_view label = host.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i);
        if (label.empty() || label.front() == '-' || label.back() == '-') bad("the registry is not a host name");
        for (char c : label)
          if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') bad("the registry is not a host name");
        if (j == std::string_view::npos) break;
        i = j + 1;
      }
      first = 1;
    }
  }
  std::size_t path_len = 0;
  for (std::size_t k = first; k < parts.size(); k++) {
    std::string_view p = parts[k];
    path_len += p.size() + 1;
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (p.empty() || !alnum(p.front()) || !alnum(p.back())) {
      bool upper = false;
      for (char c : p) upper |= (c >= 'A' && c <= 'Z');
      bad(upper ? "repository names are lower-case" : "expected [registry/]name[:tag][@digest]");
    }
    // Separators between runs of [a-z0-9]: '.', '_', "__" or dashes.
    for (std::size_t i = 0; i < p.size();) {
      if (alnum(p[i])) {
        i++;
        continue;
      }
      std::size_t j = i;
      while (j < p.size() && !alnum(p[j])) j++;
      std::string_view sep = p.substr(i, j - i);
      bool ok = sep == "." || sep == "_" || sep == "__" || sep.find_first_not_of('-') == std::string_view::npos;
      if (!ok) {
        for (char c : sep)
          if (c >= 'A' && c <= 'Z') bad("repository names are lower-case");
        bad("a repository name has a character or separator it may not");
      }
      i = j;
    }
  }
  if (path_len > 256) bad("the name is longer than 255 characters");
}

std::uint64_t parse_size(std::string_view text) {
  auto bad = [&] {
    failf(ErrorCode::kInvalidArgument,
          "\"{}\" is not a size: give bytes, or a number with k, m, g or t (powers of 1024), "
          "e.g. 256m",
          text);
  };
  std::size_t i = 0;
  std::uint64_t n = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (n > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) bad();
    n = n * 10 + static_cast<std::uint64_t>(text[i++] - '0');
  }
  if (i == 0) bad();
  std::string unit;
  for (char c : text.substr(i)) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int shift = 0;
  if (unit.empty() || unit == "b") shift = 0;
  else if (unit == "k" || unit == "kb" || unit == "kib") shift = 10;
  else if (unit == "m" || unit == "mb" || unit == "mib") shift = 20;
  else if (unit == "g" || unit == "gb" || unit == "gib") shift = 30;
  else if (unit == "t" || unit == "tb" || unit == "tib") shift = 40;
  else bad();
  if (shift && n > (std::numeric_limits<std::uint64_t>::max() >> shift)) bad();
  return n << shift;
}

Input parse_input(std::string_view input) {
  Input in;
  if (input.substr(0, 5) == "s3://") {
    in.kind = Input::Kind::kS3;
    std::string_view rest = input.substr(5);
    auto slash = rest.find('/');
    in.bucket = std::string(rest.substr(0, slash));
    if (slash != std::string_view::npos) in.prefix = std::string(rest.substr(slash + 1));
    auto bucket_ok = [](const std::string& b) {
      auto edge = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
      if (b.size() < 3 || b.size() > 63 || !edge(b.front()) || !edge(b.back())) return false;
      for (char c : b)
        if (!edge(c) && c != '.' && c != '-') return false;
      return true;
    };
    if (!bucket_ok(in.bucket))
      failf(ErrorCode::kInvalidArgument,
            "input: \"{}\": \"{}\" is not an S3 bucket name (3-63 of a-z, 0-9, '.' and '-')",
            input, in.bucket);
    for (char c : in.prefix)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        failf(ErrorCode::kInvalidArgument, "input: the S3 prefix contains a control character");
    return in;
  }
  if (input.find("://") != std::string_view::npos)
    failf(ErrorCode::kInvalidArgument,
          "input: \"{}\": only s3:// URLs are inputs (or a directory of the store, or job/NAME)",
          input);
  std::string_view p = input;
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  if (p.substr(0, 4) == "job/") {
    in.kind = Input::Kind::kJob;
    in.path = std::string(p.substr(4));
    try {
      check_name(in.path, "job");
    } catch (Fail& f) {
      f.error.message = "input: " + f.error.message;
      throw;
    }
    return in;
  }
  try {
    in.path = normalize_path(p, true);
  } catch (Fail& f) {
    f.error.message = "input: " + f.error.message;
    throw;
  }
  return in;
}

std::string short_hash(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (!EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr))
    fail(ErrorCode::kInternal, "SHA-256 of a job descriptor failed");
  std::string out;
  for (unsigned i = 0; i < 8; i++) out += fmt::format("{:02x}", md[i]);
  return out;
}

namespace {

using json = nlohmann::json;

std::uint64_t number_field(const json& j, const char* key, std::uint64_t max, const char* unit) {
  const json& v = j.at(key);
  if (!v.is_number_integer() || (v.is_number_integer() && !v.is_number_unsigned() && v.get<std::int64_t>() < 0))
    failf(ErrorCode::kInvalidArgument, "{}: must be a non-negative integer ({}), not {}", key, unit,
          v.dump());
  std::uint64_t n = v.get<std::uint64_t>();
  if (n > max) failf(ErrorCode::kInvalidArgument, "{}: {} is more than {} {}", key, n, max, unit);
  return n;
}

std::string string_field(const json& j, const char* key, const char* what) {
  if (!j.contains(key)) failf(ErrorCode::kInvalidArgument, "{}: missing ({})", key, what);
  const json& v = j.at(key);
  if (!v.is_string())
    failf(ErrorCode::kInvalidArgument, "{}: must be a string ({}), not {}", key, what, v.dump());
  return v.get<std::string>();
}

}  // namespace
}  // namespace pfs::detail::jobs

namespace pfs {

using namespace detail::jobs;
using detail::fail;
using detail::failf;

std::string_view run_state_name(RunState s) {
  switch (s) {
    case RunState::kQueued: return "queued";
    case RunState::kRunning: return "running";
    case RunState::kSuccess: return "success";
    case RunState::kFailure: return "failure";
    case RunState::kSkipped: return "skipped";
  }
  return "unknown";
}

Result<JobSpec> parse_job(std::string_view name, std::string_view text) {
  return detail::guard([&] {
    detail::check_name(name, "job");
    json j;
    try {
      j = json::parse(text);
    } catch (const json::parse_error& e) {
      failf(ErrorCode::kInvalidArgument, "job \"{}\": the descriptor is not JSON: {}", name, e.what());
    }
    if (!j.is_object())
      failf(ErrorCode::kInvalidArgument,
            "job \"{}\": the descriptor must be a JSON object with type, input, image and command",
            name);
    static const char* const kFields[] = {"name",  "type",     "input",      "image", "command",
                                          "parallel", "timeout", "limit", "cpu-shares", "memory"};
    for (const auto& [key, v] : j.items()) {
      bool known = false;
      for (const char* f : kFields) known |= key == f;
      if (!known)
        failf(ErrorCode::kInvalidArgument,
              "{}: unknown field (a job has type, input, image, command, and optionally parallel, "
              "timeout, limit, cpu-shares, memory)",
              key);
    }
    JobSpec s;
    s.name = std::string(name);
    if (j.contains("name")) {
      if (!j["name"].is_string() || j["name"].get<std::string>() != name)
        failf(ErrorCode::kInvalidArgument, "name: {} differs from the job's name \"{}\"",
              j["name"].dump(), name);
    }
    std::string type = string_field(j, "type", "map or reduce");
    if (type == "map") s.type = JobType::kMap;
    else if (type == "reduce") s.type = JobType::kReduce;
    else failf(ErrorCode::kInvalidArgument, "type: \"{}\" is neither map nor reduce", type);
    s.input = string_field(j, "input", "a directory of the store, job/NAME or s3://bucket/prefix");
    Input in = parse_input(s.input);
    if (in.kind == Input::Kind::kJob && in.path == s.name)
      failf(ErrorCode::kInvalidArgument, "input: job \"{}\" cannot read its own output", name);
    s.image = string_field(j, "image", "the image that holds the web server");
    check_image_ref(s.image);
    if (!j.contains("command"))
      fail(ErrorCode::kInvalidArgument,
           "command: missing (the command that starts the web server, e.g. [\"/bin/map\"])");
    const json& cmd = j["command"];
    if (cmd.is_string()) {
      s.command = split_command(cmd.get<std::string>());
    } else if (cmd.is_array()) {
      for (const auto& w : cmd) {
        if (!w.is_string())
          failf(ErrorCode::kInvalidArgument, "command: every element must be a string, not {}", w.dump());
        s.command.push_back(w.get<std::string>());
      }
      if (s.command.empty() || s.command[0].empty())
        fail(ErrorCode::kInvalidArgument, "command: is empty (name the program that starts the web server)");
    } else {
      failf(ErrorCode::kInvalidArgument, "command: must be an array of strings or a string, not {}",
            cmd.dump());
    }
    for (const auto& w : s.command)
      if (w.find('\0') != std::string::npos)
        fail(ErrorCode::kInvalidArgument, "command: contains a NUL character");
    if (j.contains("parallel")) s.parallel = static_cast<std::uint32_t>(number_field(j, "parallel", 256, "requests at once"));
    if (j.contains("timeout")) s.timeout = static_cast<std::uint32_t>(number_field(j, "timeout", 86400, "seconds"));
    if (j.contains("limit")) s.limit = number_field(j, "limit", std::numeric_limits<std::int64_t>::max(), "files");
    if (j.contains("cpu-shares")) {
      s.cpu_shares = number_field(j, "cpu-shares", 262144, "shares");
      if (s.cpu_shares == 1)
        fail(ErrorCode::kInvalidArgument, "cpu-shares: must be at least 2 (1024 is one CPU's share)");
    }
    if (j.contains("memory")) {
      const json& m = j["memory"];
      if (m.is_string()) {
        try {
          s.memory = parse_size(m.get<std::string>());
        } catch (detail::Fail& f) {
          f.error.message = "memory: " + f.error.message;
          throw;
        }
      } else {
        s.memory = number_field(j, "memory", 1ull << 40, "bytes");
      }
      if (s.memory != 0 && s.memory < (8ull << 20))
        failf(ErrorCode::kInvalidArgument,
              "memory: {} bytes is too little to start a container; give at least 8m", s.memory);
    }
    return s;
  });
}

std::string job_json(const JobSpec& s) {
  json j = json::object();
  j["name"] = s.name;
  j["type"] = s.type == JobType::kMap ? "map" : "reduce";
  j["input"] = s.input;
  j["image"] = s.image;
  j["command"] = s.command;
  j["parallel"] = s.parallel;
  j["timeout"] = s.timeout;
  j["limit"] = s.limit;
  j["cpu-shares"] = s.cpu_shares;
  j["memory"] = s.memory;
  return j.dump(2) + "\n";
}

}  // namespace pfs
