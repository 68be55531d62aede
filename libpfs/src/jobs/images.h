// images.h: container images as root file systems a runtime can use.
//
// An image is taken from the local store of a container engine (podman or
// docker: `<engine> save`, never a pull) or from an OCI or Docker archive
// file, and unpacked once into <dir>/<key>/rootfs (layers applied in order,
// whiteouts honoured, no symlink followed out of the tree). Containers
// share it read-only. The key is the image's id, so a re-tagged or rebuilt
// image is unpacked again and a running container keeps its own.
#pragma once

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace pfs::detail::jobs {

struct Image {
  std::string ref;  // as the job names it
  std::string id;   // the engine's id, or a hash of the archive file
  std::filesystem::path rootfs;
  // From the image's configuration:
  std::vector<std::string> entrypoint;  // put before the job's command, as Docker does
  std::vector<std::string> env;         // "KEY=value"
  std::string workdir;                  // "" is /
};

class ImageStore {
 public:
  // `engine`: "podman", "docker" or "none".
  ImageStore(std::filesystem::path dir, std::string engine);

  // The image `ref` unpacked (unpacking it on first use). Throws
  // kNotFound (not in the engine's store: says how to load one), kUnsupported
  // (engine not installed), kInvalidArgument (not an image archive).
  Image get(const std::string& ref);

  // Unpacks an OCI layout or docker-archive tar file into `dest` (absent),
  // as get() does. For tests and get().
  static Image unpack_archive(const std::filesystem::path& archive, const std::filesystem::path& dest,
                              const std::string& ref);

 private:
  std::filesystem::path dir_;
  std::string engine_;
  std::mutex mu_;  // one unpack at a time; lookups of unpacked images are quick
};

}  // namespace pfs::detail::jobs
