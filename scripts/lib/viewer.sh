# Needs scripts/lib/setup.sh sourced first (apt_install).
# Setup for the OHIF viewer (tests/viewer/, scripts/viewer, brgan demo --viewer), sourced by
# scripts/test and scripts/viewer (not run).

OHIF_VERSION="3.13.2"
OHIF_CACHE=".cache/ohif-${OHIF_VERSION}"

# setup_viewer: headless Chromium and chromedriver from Debian, and the prebuilt OHIF viewer
# (npm package @ohif/app, pinned; its dist/ unpacked under .cache/ohif-<version>/dist: no build).
# Idempotent and quick when both are there. Returns non-zero on failure (the test then skips).
setup_viewer() {
  local missing=()
  if [ -z "${OHIF_ONLY:-}" ]; then  # scripts/viewer needs only OHIF, not the test browser
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "for the OHIF viewer test" "${missing[@]}" || return 1
  fi
  [ -f "$OHIF_CACHE/dist/index.html" ] && return 0
  if ! command -v npm >/dev/null 2>&1; then
    echo "== npm not found: cannot fetch OHIF ${OHIF_VERSION}" >&2
    return 1
  fi
  echo "== fetching OHIF ${OHIF_VERSION} (npm pack @ohif/app@${OHIF_VERSION}, ~50 MB)"
  mkdir -p "$OHIF_CACHE" || return 1
  local tarball="$OHIF_CACHE/ohif-app-${OHIF_VERSION}.tgz"
  if [ ! -f "$tarball" ]; then
    # npm checks the tarball against the registry's integrity hash; its own cache is reused.
    local packed
    packed=$(cd "$OHIF_CACHE" && npm pack --silent --prefer-offline "@ohif/app@${OHIF_VERSION}" \
      | tail -n 1) || return 1
    [ -n "$packed" ] && [ -f "$OHIF_CACHE/$packed" ] || return 1
    [ "$OHIF_CACHE/$packed" = "$tarball" ] || mv "$OHIF_CACHE/$packed" "$tarball" || return 1
  fi
  rm -rf "$OHIF_CACHE/dist.tmp" && mkdir -p "$OHIF_CACHE/dist.tmp" || return 1
  tar -xzf "$tarball" -C "$OHIF_CACHE/dist.tmp" --strip-components=2 package/dist || return 1
  [ -f "$OHIF_CACHE/dist.tmp/index.html" ] || return 1
  rm -rf "$OHIF_CACHE/dist" && mv "$OHIF_CACHE/dist.tmp" "$OHIF_CACHE/dist"
}

# setup_orthanc: Orthanc and its DICOMweb plugin from Debian (what the viewer needs of
# setup_system_tools). Returns non-zero on failure.
setup_orthanc() {
  local missing=()
  command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || missing+=(orthanc)
  [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_install "Orthanc for the viewer" "${missing[@]}"
}
