#!/usr/bin/env bash
# deps.sh: installs the Debian 12 packages pfs needs to build, test and run.
# Idempotent: does nothing when everything is already there. Needs root.
set -eu -o pipefail
PACKAGES=(
  g++ meson ninja-build pkg-config          # toolchain
  libcli11-dev libcurl4-openssl-dev nlohmann-json3-dev libbtrfsutil-dev libssl-dev libfmt-dev doctest-dev
  libboost-dev libarchive-dev                 # HTTP server (Beast, Asio); tar streams of directories
  libisal-dev                               # CRC-32C of btrfs send streams
  clang libclang-rt-14-dev                  # the libFuzzer target of the stream reader (scripts/fuzz.sh)
  btrfs-progs                               # mkfs.btrfs for the test file system
  jq                                        # the end-to-end tests read --json output with it
  curl                                      # the HTTP tests and the demo drive the server with it
  git                                       # the benchmark compares against git
  util-linux                                # losetup, mount, setpriv
  iproute2                                  # ss: the HTTP tests check the listen backlog
  e2fsprogs                                 # mkfs.ext4: the portable backend is tested on ext4
  runc                                      # jobs: the OCI runtime that runs their containers
  podman                                    # jobs: the local image store images come from (never a registry)
  busybox-static                            # jobs: the tests build their images from it, offline
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The jobs tests read S3 inputs from a local S3 server: the npm package
# s3rver (from the npm registry; Node.js from Debian when missing).
S3RVER_DIR=${S3RVER_DIR:-/opt/pfs-test-npm}
if [ ! -x "$S3RVER_DIR/node_modules/.bin/s3rver" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: s3rver is missing; run as root (or: npm install --prefix $S3RVER_DIR s3rver@3.7.1)" >&2
    exit 1
  fi
  if ! command -v npm >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  echo "deps.sh: installing s3rver into $S3RVER_DIR" >&2
  npm install --prefix "$S3RVER_DIR" --no-audit --no-fund --loglevel=error s3rver@3.7.1 >/dev/null
fi
