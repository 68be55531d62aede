// images.cc: ImageStore: an image from podman's or docker's local store
// (`save`) or from an archive file, unpacked into a root file system with
// libarchive (its layers applied in order, whiteouts honoured).
#include "images.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "fail.h"
#include "fsutil.h"
#include "lazy_lib.h"
#include "names.h"
#include "process.h"
#include "spec.h"

namespace pfs::detail {
PFS_LAZY_FN(archive_lib, archive_entry_filetype)
PFS_LAZY_FN(archive_lib, archive_entry_hardlink)
PFS_LAZY_FN(archive_lib, archive_entry_pathname)
PFS_LAZY_FN(archive_lib, archive_entry_set_hardlink)
PFS_LAZY_FN(archive_lib, archive_entry_set_pathname)
PFS_LAZY_FN(archive_lib, archive_error_string)
PFS_LAZY_FN(archive_lib, archive_read_data_block)
PFS_LAZY_FN(archive_lib, archive_read_free)
PFS_LAZY_FN(archive_lib, archive_read_new)
PFS_LAZY_FN(archive_lib, archive_read_next_header)
PFS_LAZY_FN(archive_lib, archive_read_open_filename)
PFS_LAZY_FN(archive_lib, archive_read_support_filter_all)
PFS_LAZY_FN(archive_lib, archive_read_support_format_tar)
PFS_LAZY_FN(archive_lib, archive_write_disk_new)
PFS_LAZY_FN(archive_lib, archive_write_disk_set_options)
PFS_LAZY_FN(archive_lib, archive_write_close)
PFS_LAZY_FN(archive_lib, archive_write_data_block)
PFS_LAZY_FN(archive_lib, archive_write_finish_entry)
PFS_LAZY_FN(archive_lib, archive_write_free)
PFS_LAZY_FN(archive_lib, archive_write_header)
}  // namespace pfs::detail

namespace pfs::detail::jobs {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A tar (optionally compressed) opened for reading; freed on scope exit.
struct TarReader {
  struct archive* a;
  std::string what;
  TarReader(const fs::path& file, std::string w) : a(archive_read_new()), what(std::move(w)) {
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, file.c_str(), 1 << 20) != ARCHIVE_OK)
      failf(ErrorCode::kInvalidArgument, "{} cannot be read: {}", what, archive_error_string(a));
  }
  ~TarReader() { archive_read_free(a); }
  // The next entry, or nullptr at the end.
  struct archive_entry* next() {
    struct archive_entry* e = nullptr;
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) return nullptr;
    if (r < ARCHIVE_WARN)
      failf(ErrorCode::kInvalidArgument, "{} is not a valid tar archive: {}", what, archive_error_string(a));
    return e;
  }
};

// A tar member's path made relative and checked: no "..", no empty
// segment. "" for the archive's root ("./").
std::string member_path(const char* raw, const std::string& what) {
  std::string p = raw ? raw : "";
  while (p.rfind("./", 0) == 0) p.erase(0, 2);
  while (!p.empty() && p.front() == '/') p.erase(0, 1);
  while (!p.empty() && p.back() == '/') p.pop_back();
  if (p.empty() || p == ".") return {};
  for (const auto& seg : split_path(p))
    if (seg == ".." || seg.empty())
      failf(ErrorCode::kInvalidArgument, "{} has a member \"{}\" that leaves the tree", what, p);
  return p;
}

// Extracts the regular files of an image archive (blobs and JSON) below
// `dir`, refusing anything that would leave it.
void extract_outer(const fs::path& archive, const fs::path& dir) {
  std::string what = "image archive " + archive.string();
  TarReader r(archive, what);
  UniqueFd top = open_dir(AT_FDCWD, dir.string());
  while (auto* e = r.next()) {
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    std::string p = member_path(archive_entry_pathname(e), what);
    if (p.empty()) continue;
    if (p.find('/') != std::string::npos) mkdirs_beneath(top.get(), path_parent(p));
    UniqueFd f = open_beneath(top.get(), p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (!f) fail_errno(errno, "write " + (dir / p).string());
    const void* buf;
    size_t size;
    la_int64_t off;
    int rc;
    while ((rc = archive_read_data_block(r.a, &buf, &size, &off)) == ARCHIVE_OK) {
      if (::lseek(f.get(), off, SEEK_SET) < 0) fail_errno(errno, "seek in " + (dir / p).string());
      write_all(f.get(), static_cast<const char*>(buf), size, (dir / p).string());
    }
    if (rc != ARCHIVE_EOF)
      failf(ErrorCode::kInvalidArgument, "{}: member {} is cut short: {}", what, p, archive_error_string(r.a));
  }
}

json read_json(const fs::path& file, const std::string& what) {
  std::ifstream in(file);
  if (!in) failf(ErrorCode::kInvalidArgument, "{}: {} is missing", what, file.filename().string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    failf(ErrorCode::kInvalidArgument, "{}: {} is not valid JSON: {}", what, file.filename().string(), e.what());
  }
}

// "sha256:abc..." -> <dir>/blobs/sha256/abc..., checked.
fs::path blob_path(const fs::path& dir, const std::string& digest, const std::string& what) {
  auto colon = digest.find(':');
  if (colon == std::string::npos || !is_hex(digest.substr(colon + 1)))
    failf(ErrorCode::kInvalidArgument, "{}: bad digest \"{}\"", what, digest);
  return dir / "blobs" / digest.substr(0, colon) / digest.substr(colon + 1);
}

// Removes `rel` below the root file system (a whiteout), following no
// symlink on the way there.
void whiteout(int root, const std::string& parent, const std::string& name) {
  UniqueFd dir = parent.empty() ? UniqueFd(::dup(root)) : open_beneath(root, parent, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (!dir) return;  // nothing there to hide
  if (name.empty()) {  // opaque: hide everything below lower layers had here
    for (const auto& n : list_dir_names(dir.get())) remove_tree(dir.get(), n);
  } else {
    remove_tree(dir.get(), name);
  }
}

void apply_layer(const fs::path& layer, const fs::path& rootfs, const std::string& what) {
  TarReader r(layer, what);
  UniqueFd root = open_dir(AT_FDCWD, rootfs.string());
  struct archive* w = archive_write_disk_new();
  struct Free {
    struct archive* w;
    ~Free() { archive_write_free(w); }
  } free_w{w};
  archive_write_disk_set_options(
      w, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_UNLINK |
             ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  while (auto* e = r.next()) {
    std::string p = member_path(archive_entry_pathname(e), what);
    if (p.empty()) continue;
    std::string base = path_base(p), parent = path_parent(p);
    if (base.rfind(".wh.", 0) == 0) {
      whiteout(root.get(), parent, base == ".wh..wh..opq" ? std::string() : base.substr(4));
      continue;
    }
    auto type = archive_entry_filetype(e);
    // Device nodes, FIFOs and sockets: the runtime makes /dev; the rest
    // has no use in a job's image.
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) continue;
    std::string abs = (rootfs / p).string();
    archive_entry_set_pathname(e, abs.c_str());
    if (const char* h = archive_entry_hardlink(e)) {
      std::string target = member_path(h, what);
      std::string abs_target = (rootfs / target).string();
      archive_entry_set_hardlink(e, abs_target.c_str());
    }
    if (archive_write_header(w, e) < ARCHIVE_WARN)
      failf(ErrorCode::kInvalidArgument, "{}: cannot unpack {}: {}", what, p, archive_error_string(w));
    const void* buf;
    size_t size;
    la_int64_t off;
    int rc;
    while ((rc = archive_read_data_block(r.a, &buf, &size, &off)) == ARCHIVE_OK)
      if (archive_write_data_block(w, buf, size, off) < ARCHIVE_WARN)
        failf(ErrorCode::kIo, "{}: cannot write {}: {}", what, p, archive_error_string(w));
    if (rc != ARCHIVE_EOF)
      failf(ErrorCode::kInvalidArgument, "{}: member {} is cut short: {}", what, p, archive_error_string(r.a));
    archive_write_finish_entry(w);
  }
  if (archive_write_close(w) < ARCHIVE_WARN)
    failf(ErrorCode::kIo, "{}: {}", what, archive_error_string(w));
}

std::vector<std::string> strings(const json& j, const char* key) {
  std::vector<std::string> out;
  if (auto it = j.find(key); it != j.end() && it->is_array())
    for (const auto& s : *it)
      if (s.is_string()) out.push_back(s.get<std::string>());
  return out;
}

}  // namespace

Image ImageStore::unpack_archive(const fs::path& archive, const fs::path& dest, const std::string& ref) {
  std::string what = "image " + ref;
  fs::path tmp = dest.string() + ".tmp-" + random_hex(4);
  fs::path blobs = tmp / "archive", rootfs = tmp / "rootfs";
  fs::create_directories(blobs);
  fs::create_directories(rootfs);
  struct Cleanup {
    fs::path p;
    bool keep = false;
    ~Cleanup() {
      std::error_code ec;
      if (!keep) fs::remove_all(p, ec);
    }
  } cleanup{tmp};
  extract_outer(archive, blobs);

  std::vector<fs::path> layers;
  json config;
  if (fs::exists(blobs / "index.json")) {  // an OCI image layout
    json index = read_json(blobs / "index.json", what);
    json manifest = index;
    // Down through indexes to one image manifest (linux/amd64 when several).
    for (int depth = 0; manifest.contains("manifests"); depth++) {
      if (depth > 4 || !manifest["manifests"].is_array() || manifest["manifests"].empty())
        failf(ErrorCode::kInvalidArgument, "{}: its index names no image manifest", what);
      json pick = manifest["manifests"][0];
      for (const auto& m : manifest["manifests"])
        if (m.contains("platform") && m["platform"].value("architecture", "") == "amd64") pick = m;
      manifest = read_json(blob_path(blobs, pick.value("digest", ""), what), what);
    }
    config = read_json(blob_path(blobs, manifest.at("config").value("digest", ""), what), what);
    for (const auto& l : manifest.value("layers", json::array()))
      layers.push_back(blob_path(blobs, l.value("digest", ""), what));
  } else if (fs::exists(blobs / "manifest.json")) {  // docker save
    json m = read_json(blobs / "manifest.json", what);
    if (!m.is_array() || m.empty()) failf(ErrorCode::kInvalidArgument, "{}: manifest.json is empty", what);
    auto rel = [&](const json& v) {
      std::string p = member_path(v.get<std::string>().c_str(), what);
      return blobs / p;
    };
    config = read_json(rel(m[0].at("Config")), what);
    for (const auto& l : m[0].value("Layers", json::array())) layers.push_back(rel(l));
  } else {
    failf(ErrorCode::kInvalidArgument,
          "{}: {} is neither an OCI image layout (index.json) nor a docker-archive (manifest.json)", what,
          archive.string());
  }
  for (const auto& l : layers) apply_layer(l, rootfs, what);
  fs::remove_all(blobs);

  Image img;
  img.ref = ref;
  const json& c = config.contains("config") ? config["config"] : config;
  img.entrypoint = strings(c, "Entrypoint");
  img.env = strings(c, "Env");
  if (c.contains("WorkingDir") && c["WorkingDir"].is_string()) img.workdir = c["WorkingDir"].get<std::string>();
  json summary{{"ref", ref}, {"entrypoint", img.entrypoint}, {"env", img.env}, {"workdir", img.workdir}};
  std::ofstream(tmp / "image.json") << summary.dump(2) << "\n";
  fs::rename(tmp, dest);
  cleanup.keep = true;
  img.rootfs = dest / "rootfs";
  return img;
}

ImageStore::ImageStore(fs::path dir, std::string engine) : dir_(std::move(dir)), engine_(std::move(engine)) {}

Image ImageStore::get(const std::string& ref) {
  check_image_ref(ref);
  std::string key, archive;
  for (std::string_view scheme : {"oci-archive:", "docker-archive:"})
    if (ref.rfind(scheme, 0) == 0) archive = ref.substr(scheme.size());
  if (!archive.empty()) {
    struct stat st {};
    if (::stat(archive.c_str(), &st) != 0)
      failf(ErrorCode::kNotFound, "image {}: the archive {} cannot be read: {}", ref, archive, std::strerror(errno));
    key = "a-" + short_hash(fmt::format("{}\n{}\n{}", archive, st.st_size, mtime_ns(st)));
  } else {
    if (engine_ == "none")
      failf(ErrorCode::kNotFound,
            "image {}: no container engine is configured to look it up (pachctl serve --image-engine "
            "podman|docker), or name an archive: oci-archive:/path/image.tar",
            ref);
    auto r = run_process({engine_, "image", "inspect", "--format", "{{.Id}}", ref}, {},
                         engine_ == "podman" ? "podman" : "docker.io");
    std::string id = r.out;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    if (id.rfind("sha256:", 0) == 0) id.erase(0, 7);
    if (r.status != 0 || id.empty() || !is_hex(id))
      failf(ErrorCode::kNotFound,
            "image {} is not in {}'s local image store; pfs never pulls from a registry: load it first "
            "({} load -i IMAGE.tar, or {} import ROOTFS.tar {})",
            ref, engine_, engine_, engine_, ref);
    key = id.substr(0, 32);
  }
  fs::path dest = dir_ / key;
  std::lock_guard lk(mu_);
  fs::create_directories(dir_);
  if (!fs::exists(dest / "rootfs")) {
    if (!archive.empty()) {
      unpack_archive(archive, dest, ref);
    } else {
      fs::path tar = dir_ / (key + ".save-" + random_hex(4) + ".tar");
      struct Rm {
        fs::path p;
        ~Rm() {
          std::error_code ec;
          fs::remove(p, ec);
        }
      } rm{tar};
      std::vector<std::string> argv = engine_ == "podman"
                                          ? std::vector<std::string>{"podman", "save", "--format", "oci-archive", "-o", tar.string(), ref}
                                          : std::vector<std::string>{engine_, "save", "-o", tar.string(), ref};
      ProcessOptions po;
      po.timeout = std::chrono::minutes(10);
      auto r = run_process(argv, po);
      if (r.status != 0) failf(ErrorCode::kIo, "image {}: {}", ref, describe_failure(argv, r));
      unpack_archive(tar, dest, ref);
    }
  }
  json s = read_json(dest / "image.json", "image " + ref);
  Image img;
  img.ref = ref;
  img.id = key;
  img.rootfs = dest / "rootfs";
  img.entrypoint = strings(s, "entrypoint");
  img.env = strings(s, "env");
  img.workdir = s.value("workdir", "");
  return img;
}

}  // namespace pfs::detail::jobs
