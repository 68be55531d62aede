#!/bin/bash
# make_image.sh TAG [OCI_ARCHIVE]: builds the pipelines tests' image
# offline: a root file system of Debian's static busybox with every applet
# (sh, cp, wc, sort, find, md5sum, ...), imported into podman's local store
# as TAG; with OCI_ARCHIVE, also saved there as an oci-archive. Its
# ENTRYPOINT is set, so the tests see that a pipeline's cmd replaces it.
set -euo pipefail
tag=$1 archive=${2:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
root=$dir/rootfs
mkdir -p "$root"/{bin,tmp,proc,dev,sys,run,etc,work}
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
tar -C "$root" -cf "$dir/rootfs.tar" .
podman import --quiet --change 'ENTRYPOINT ["/bin/false"]' --change 'ENV FROM_IMAGE=yes' \
  --change 'WORKDIR /work' "$dir/rootfs.tar" "$tag" >/dev/null
if [ -n "$archive" ]; then
  rm -f "$archive"
  podman save --quiet --format oci-archive -o "$archive" "$tag"
fi
