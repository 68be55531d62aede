#!/bin/bash
# make_image.sh JOBSERVER TAG [OCI_ARCHIVE]: builds the jobs tests' image
# offline: a root file system of Debian's static busybox and the static
# jobserver program (tests/jobs/jobserver.cc), imported into podman's local
# store as TAG; with OCI_ARCHIVE, also saved there as an oci-archive.
set -euo pipefail
jobserver=$1 tag=$2 archive=${3:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
root=$dir/rootfs
mkdir -p "$root"/{bin,tmp,proc,dev,sys,run,etc}
cp /bin/busybox "$root/bin/busybox"
for a in sh ls cat echo sleep true; do ln -s busybox "$root/bin/$a"; done
cp "$jobserver" "$root/jobserver"
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
tar -C "$root" -cf "$dir/rootfs.tar" .
podman import --quiet --change 'CMD ["/jobserver"]' "$dir/rootfs.tar" "$tag" >/dev/null
if [ -n "$archive" ]; then
  rm -f "$archive"
  podman save --quiet --format oci-archive -o "$archive" "$tag"
fi
