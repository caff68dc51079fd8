#!/usr/bin/env bash
# Install the Debian packages whose programs the tests run, but only those whose program is missing.
set -euo pipefail

# program the tests run : Debian package that ships it
tools=(
  "openssl:openssl"
  "gdcmanon:libgdcm-tools"
  "dcmdump:dcmtk"
  "dciodvfy:dicom3tools"
  "xorriso:xorriso"
  "isoinfo:genisoimage"
  "mkfs.fat:dosfstools"
  "mcopy:mtools"
  "7z:p7zip-full"
  "mkfs.exfat:exfatprogs"
  "mount.exfat-fuse:exfat-fuse"
  "Orthanc:orthanc"
  "/usr/share/orthanc/plugins/libOrthancDicomWeb.so:orthanc-dicomweb"
  "/usr/lib/postgresql/15/bin/initdb:postgresql"
  "chromium:chromium"
)

missing=()
for entry in "${tools[@]}"; do
  program=${entry%%:*}
  package=${entry#*:}
  if ! command -v "$program" >/dev/null 2>&1 && [[ ! -e "$program" ]]; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "system-deps: every program the tests use is installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${missing[*]} and apt-get is not available; install them by hand" >&2
  exit 1
fi

# Root runs apt-get directly; anyone else needs sudo.
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "system-deps: missing ${missing[*]}; run as root or install sudo" >&2
    exit 1
  fi
fi

echo "system-deps: installing ${missing[*]}"
${as_root[@]+"${as_root[@]}"} apt-get update
${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"

# Make sure the packages really provided the programs.
for entry in "${tools[@]}"; do
  program=${entry%%:*}
  if ! command -v "$program" >/dev/null 2>&1 && [[ ! -e "$program" ]]; then
    echo "system-deps: $program is still missing after apt-get install" >&2
    exit 1
  fi
done
