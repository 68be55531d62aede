// routes_files.cc: the routes of files and directories: /file (a file's
// bytes, a slice, a Range, or every match of a glob; uploads), /stat,
// /list, and a directory as a tar stream in (/dir) and out (/archive).
// Uploads pull the body as a Source (Client::put_file publishes the file
// only when the body is complete); downloads are streamed from a FileHandle.
#include "routes.h"

#include <cctype>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include <fmt/format.h>

#include "fsutil.h"
#include "local_dir.h"
#include "names.h"
#include "tar.h"

namespace pfs::detail::routes {

// Where a read looks: ?branch= (working state), ?commit= (a commit, or a
// branch's head), ?ref= (either, as Ref::any); master's working state when
// none is given.
Ref read_ref(const Request& req) {
  int given = req.has("branch") + req.has("commit") + req.has("ref");
  if (given > 1) fail(ErrorCode::kInvalidArgument, "give one of branch, commit and ref, not several");
  if (req.has("commit")) return Ref::commit(req.param("commit"));
  if (req.has("ref")) return Ref::any(req.param("ref"));
  return Ref::branch(req.param("branch", "master"));
}

namespace {

// The path a route captured (decoded and UTF-8-checked by the engine); pfs's
// own checks (normalize_path) then refuse "..", "//", NUL and the like.
std::string captured(const Request& req, bool allow_root) {
  std::string p = req.matches.size() > 1 ? req.matches[1] : std::string();
  return normalize_path(p, allow_root);
}

// The regular files of a tar stream, as a FileBatch; other entries are
// listed in `skipped`, directories are implied by the files' paths.
class TarBatch final : public FileBatch {
 public:
  TarBatch(TarReader& tar, std::vector<std::string>& skipped) : tar_(tar), skipped_(skipped) {}
  Result<Source*> next(std::string& path) override {
    return guard([&]() -> Source* {
      TarReader::Entry e;
      while (tar_.next(e)) {
        std::string p = e.path;
        while (p.rfind("./", 0) == 0) p.erase(0, 2);
        if (e.type == TarReader::Entry::Type::kFile) {
          path = p;
          return &tar_.data();
        }
        if (e.type == TarReader::Entry::Type::kOther) skipped_.push_back(p);
      }
      return nullptr;
    });
  }

 private:
  TarReader& tar_;
  std::vector<std::string>& skipped_;
};

// `attachment; filename="<path>"` (RFC 6266), with the path quoted, plus its
// UTF-8 form (RFC 5987) when it is not plain ASCII.
std::string disposition(const std::string& path) {
  std::string quoted, encoded;
  bool ascii = true;
  for (unsigned char ch : path) {
    if (ch >= 0x80) {
      ascii = false;
      quoted += '_';
    } else {
      if (ch == '"' || ch == '\\') quoted += '\\';
      quoted += static_cast<char>(ch);
    }
    if (std::isalnum(ch) || std::strchr("!#$&+-.^_`|~/", ch))
      encoded += static_cast<char>(ch);
    else
      encoded += fmt::format("%{:02X}", ch);
  }
  std::string out = "attachment; filename=\"" + quoted + "\"";
  if (!ascii) out += "; filename*=UTF-8''" + encoded;
  return out;
}

// Streams `entries` (files and directories of `ref`) as a tar, with paths
// relative to `base`; false when the client went away or a file failed.
bool write_tar(Client& c, const Ref& ref, const std::vector<FileInfo>& entries, const std::string& base,
               http::BodyWriter& out, Response& res) {
  try {
    TarWriter tar([&](const char* p, std::size_t n) { return out.write(p, n); });
    std::vector<char> buf(kPiece);
    for (const auto& e : entries) {
      std::string name = base.empty() ? e.path : e.path.substr(base.size() + 1);
      if (e.type == FileInfo::Type::kDirectory) {
        tar.add_dir(name, e.mtime_ns);
        continue;
      }
      auto f = c.open_file(ref, e.path);
      if (!f) {  // gone since the listing: cut the response
        res.cut_reason = f.error().message;
        return false;
      }
      std::uint64_t size = (*f)->info().size, off = 0;
      tar.begin_file(name, size, (*f)->info().mtime_ns);
      while (off < size) {
        auto n = (*f)->read_at(off, std::span<char>(buf.data(), buf.size()));
        if (!n || *n == 0) return false;
        tar.data(buf.data(), *n);
        off += *n;
      }
    }
    tar.finish();
    return true;
  } catch (Fail& f) {
    res.cut_reason = f.error.message;
    return false;
  } catch (...) {
    return false;
  }
}

struct RangeRefused {};

// A Range header on a file of `len` bytes: {start, count} to send, or
// nullopt for all of it; a 416 (thrown as done) when it is outside.
std::optional<std::pair<std::uint64_t, std::uint64_t>> range_of(const Request& req, Response& res,
                                                                std::uint64_t len) {
  std::string value = req.header("Range");
  if (value.empty()) return std::nullopt;
  auto r = http::parse_range(value);
  if (!r) return std::nullopt;  // malformed or several ranges: the whole file (RFC 9110)
  auto [first, last] = *r;
  std::int64_t n = static_cast<std::int64_t>(len);
  if (first < 0) {  // a suffix: the last `last` bytes
    first = std::max<std::int64_t>(0, n - last);
    last = n - 1;
  } else if (last < 0 || last >= n) {
    last = n - 1;
  }
  if (first >= n || first > last) {
    res.set_header("Content-Range", fmt::format("bytes */{}", len));
    res.error(416, "invalid_argument",
              fmt::format("range {} is not within the file ({} bytes)", value.substr(0, 60), len));
    throw RangeRefused{};
  }
  return std::pair<std::uint64_t, std::uint64_t>(first, last - first + 1);
}

// Refuses an upload that cannot succeed before its body is read.
void precheck_put(Client& c, const std::string& branch, const std::string& path, const PutOptions& o) {
  if (o.append && o.offset) fail(ErrorCode::kInvalidArgument, "append and offset exclude each other; pick one");
  take(c.inspect_branch(branch));
  if (o.offset) {
    FileInfo f = take(c.stat_file(Ref::branch(branch), path));
    if (*o.offset > f.size)
      failf(ErrorCode::kInvalidArgument, "offset {} is past the end of \"{}\" ({} bytes)", *o.offset, path,
            f.size);
  }
}

// Every file a glob matches, each as a part of a multipart/mixed body (or
// of a tar stream).
void get_glob(Client& store, const Request& req, Response& res, const std::string& pattern) {
  Ref ref = read_ref(req);
  std::vector<FileInfo> all = take(store.list_files(ref, pattern, {}));
  auto files = std::make_shared<std::vector<FileInfo>>();
  for (auto& f : all)
    if (f.type == FileInfo::Type::kFile) files->push_back(std::move(f));
  std::string format = req.param("format");
  if (format.empty() && req.header("Accept").find("application/x-tar") != std::string::npos) format = "tar";
  Client* c = &store;
  if (format == "tar") {
    res.content_type = "application/x-tar";
    res.stream = [c, ref, files, &res](http::BodyWriter& out) { return write_tar(*c, ref, *files, "", out, res); };
    return;
  }
  if (!format.empty() && format != "multipart")
    failf(ErrorCode::kInvalidArgument, "format={}: use multipart (the default) or tar", format);
  std::string boundary = "pfs-" + random_hex(24);
  res.content_type = "multipart/mixed; boundary=" + boundary;
  res.stream = [c, ref, files, boundary, &res](http::BodyWriter& out) {
    std::vector<char> buf(kPiece);
    for (const auto& info : *files) {
      auto f = c->open_file(ref, info.path);
      if (!f) {  // gone since the listing: cut the response
        res.cut_reason = f.error().message;
        return false;
      }
      std::string head = fmt::format(
          "--{}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n"
          "Content-Disposition: {}\r\n\r\n",
          boundary, (*f)->info().size, disposition(info.path));
      if (!out.write(head.data(), head.size())) return false;
      std::uint64_t off = 0, size = (*f)->info().size;
      while (off < size) {
        auto n = (*f)->read_at(off, buf);
        if (!n || *n == 0) return false;
        if (!out.write(buf.data(), *n)) return false;
        off += *n;
      }
      if (!out.write("\r\n", 2)) return false;
    }
    std::string tail = "--" + boundary + "--\r\n";
    return out.write(tail.data(), tail.size());
  };
}

// GET /file/<path> of one file (not a glob).
void get_one_file(Client& c, const Request& req, Response& res) {
  std::string p = captured(req, false);
  std::shared_ptr<FileHandle> f = take(c.open_file(read_ref(req), p));
  // ?offset=&length=: a slice, checked as a local read checks it (the
  // remote client's ranges); the Range header works as well, within it.
  std::uint64_t size = f->info().size, start = 0, len = size;
  if (req.has("offset") || req.has("length")) {
    ReadRange r;
    if (req.has("offset")) r.offset = number(req, "offset");
    if (req.has("length")) r.length = number(req, "length");
    len = check_read_range(size, r, p);
    start = r.offset;
  }
  if (auto range = range_of(req, res, len)) {
    res.status = 206;
    res.set_header("Content-Range", fmt::format("bytes {}-{}/{}", range->first, range->first + range->second - 1, len));
    start += range->first;
    len = range->second;
  }
  res.content_type = "application/octet-stream";
  res.set_header("Accept-Ranges", "bytes");
  res.set_header("Last-Modified", http::http_date(static_cast<std::time_t>(f->info().mtime_ns / 1000000000)));
  res.set_header("X-Pfs-Size", std::to_string(size));
  res.set_header("X-Pfs-Mtime-Ns", std::to_string(f->info().mtime_ns));
  if (len <= kPiece) {
    // A small file goes out with its headers in one write, from here.
    res.body.resize(len);
    std::size_t got = 0;
    while (got < len) {
      std::size_t n = take(f->read_at(start + got, std::span<char>(res.body.data() + got, len - got)));
      if (n == 0) fail(ErrorCode::kIo, fmt::format("\"{}\" ended before its size; run pachctl fsck", p));
      got += n;
    }
    return;
  }
  res.stream_length = len;
  res.stream = [f, start, len, &res](http::BodyWriter& out) {
    std::vector<char> buf(kPiece);
    for (std::uint64_t off = 0; off < len;) {
      auto n = f->read_at(start + off, std::span<char>(buf.data(), std::min<std::uint64_t>(kPiece, len - off)));
      if (!n || *n == 0) {  // an error: cut the response (the client sees it short)
        res.cut_reason = n ? "the file ended before its size" : n.error().message;
        return false;
      }
      if (!out.write(buf.data(), *n)) return false;
      off += *n;
    }
    return true;
  };
}

}  // namespace

bool file_is_quick(const Request& req) { return req.matches.size() > 1 && !is_glob(req.matches[1]); }

// GET /file/<path>: the file's bytes (a slice with ?offset=&length= or a
// Range header); a glob answers every match.
void get_file(Client& c, const Request& req, Response& res) {
  try {
    const std::string& raw = req.matches[1];
    if (is_glob(raw)) return get_glob(c, req, res, raw);
    get_one_file(c, req, res);
  } catch (RangeRefused&) {  // the 416 is in `res`
  }
}

// POST or PUT /file/<path>?branch=[&append=true|&offset=N]: the body is the
// file's new content (or what is appended, or written at the offset).
void put_file(Client& c, const Request& req, Response& res) {
  std::string b = write_branch(req), p = captured(req, false);
  PutOptions o;
  o.append = flag(req, "append");
  if (req.has("offset")) o.offset = number(req, "offset");
  precheck_put(c, b, p, o);
  res.json(200, json(take(c.put_file(b, p, *req.body, o))));
}

void delete_file(Client& c, const Request& req, Response& res) {
  res.json(200, json(take(c.delete_file(write_branch(req), captured(req, false)))));
}

void stat_file(Client& c, const Request& req, Response& res) {
  res.json(200, json(take(c.stat_file(read_ref(req), captured(req, true)))));
}

void list_files(Client& c, const Request& req, Response& res) {
  ListOptions o;
  o.recursive = flag(req, "recursive");
  std::string raw = req.matches.size() > 1 ? req.matches[1] : "";
  std::string p = is_glob(raw) ? raw : captured(req, true);
  res.json(200, json(take(c.list_files(read_ref(req), p, o))));
}

// POST /dir/<path>: the body is a tar stream of the files to put below it,
// published in one operation.
void put_dir(Client& c, const Request& req, Response& res) {
  std::string b = write_branch(req), p = captured(req, true);
  take(c.inspect_branch(b));
  std::vector<std::string> skipped;
  PutDirResult r = take(guard([&] {
    TarReader tar(*req.body);
    TarBatch batch(tar, skipped);
    return take(c.put_files(b, p, batch));
  }));
  r.skipped.insert(r.skipped.end(), skipped.begin(), skipped.end());
  res.json(200, json(r));
}

// GET /archive/<dir>: everything below a directory, as a tar stream.
void get_archive(Client& store, const Request& req, Response& res) {
  Ref ref = read_ref(req);
  std::string p = captured(req, true);
  FileInfo info = take(store.stat_file(ref, p));
  if (info.type != FileInfo::Type::kDirectory)
    failf(ErrorCode::kInvalidArgument, "\"{}\" is a file; copy a file without -r", p);
  ListOptions o;
  o.recursive = true;
  auto entries = std::make_shared<std::vector<FileInfo>>(take(store.list_files(ref, p, o)));
  Client* c = &store;
  res.content_type = "application/x-tar";
  res.stream = [c, ref, entries, p, &res](http::BodyWriter& out) { return write_tar(*c, ref, *entries, p, out, res); };
}

}  // namespace pfs::detail::routes
