#!/usr/bin/env bash
# Cài / nâng cấp / gỡ hatang agent từ gói ngoại tuyến (không cần internet).
# Install / upgrade / remove the hatang agent from the offline bundle (no internet needed).
#
#   sudo ./install-agent.sh [--enrol ENROL.tar.gz [--replace-config]] [--root DIR] [--remove [--purge]] [--no-start]
#
#   --enrol FILE       gói đăng ký của văn phòng (từ trung tâm) / the office's enrolment bundle (from the centre)
#   --replace-config   cùng --enrol: thay cả agent.yaml đã sửa tại máy (bản cũ lưu thành agent.yaml.bak-<giờ>) /
#                      with --enrol: replace an agent.yaml edited on this box too (saved as agent.yaml.bak-<time>)
#   --root DIR         cài vào thư mục DIR thay vì / (thử nghiệm) / install under DIR instead of / (tests)
#   --remove           gỡ agent (giữ /etc/hatang, /var/lib/hatang) / remove the agent (keeps config and state)
#   --purge            cùng --remove: xoá cả các tệp cấu hình trình cài đã ghi, dữ liệu, người dùng hatang /
#                      with --remove: also the config files the installer wrote, the state, the hatang user
#   --no-start         không khởi động / khởi động lại dịch vụ / do not start or restart the service
#
# Environment: HATANG_PYTHON = the Python 3.11+ interpreter to use (default: python3 on PATH).
# Run from the unpacked bundle. Idempotent: a second identical run changes nothing. The last line is for
# Ansible: "HATANG-INSTALL: changed" or "HATANG-INSTALL: unchanged" ("HATANG-INSTALL: failed" on error).
set -Eeuo pipefail
umask 022

UNIT=hatang-agent.service
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

info() { printf '%s / %s\n' "$1" "$2"; }
warn() { printf 'CẢNH BÁO: %s\nWARNING: %s\n' "$1" "$2" >&2; }
REPORTED=0  # the failure was already explained (fail, the checks): the EXIT trap adds nothing
fail() {  # fail VI EN: the error in both languages, then the machine-readable last line
  printf 'LỖI: %s\nERROR: %s\n' "$1" "$2" >&2
  echo "HATANG-INSTALL: failed"
  REPORTED=1
  exit 1
}
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

# Any other failure (a command that fails under set -e, a signal) ends here too: the failing command in
# both languages and the last line "HATANG-INSTALL: failed".
TMP=""
ERR_LINE="?"
ERR_COMMAND="?"
# shellcheck disable=SC2317  # (called by the EXIT trap)
on_exit() {
  local rc=$?
  [ -z "$TMP" ] || rm -rf -- "$TMP"
  if [ "$rc" != 0 ] && [ "$REPORTED" = 0 ]; then
    printf 'LỖI: trình cài dừng giữa chừng (dòng %s, mã %s: %s); xem thông báo ở trên, sửa rồi chạy lại (chạy lại là an toàn)\n' \
      "$ERR_LINE" "$rc" "$ERR_COMMAND" >&2
    printf 'ERROR: the installer stopped half-way (line %s, code %s: %s); see the messages above, fix the cause and run it again (running it again is safe)\n' \
      "$ERR_LINE" "$rc" "$ERR_COMMAND" >&2
    echo "HATANG-INSTALL: failed"
  fi
  exit "$rc"
}
trap 'ERR_LINE=$LINENO; ERR_COMMAND=$BASH_COMMAND' ERR
trap on_exit EXIT
trap 'ERR_COMMAND="(SIGINT)"; exit 130' INT
trap 'ERR_COMMAND="(SIGTERM)"; exit 143' TERM

ENROL=""
ROOT=/
REMOVE=0
PURGE=0
NO_START=0
REPLACE_CONFIG=0
while [ $# -gt 0 ]; do
  case "$1" in
    --enrol) [ $# -ge 2 ] || fail "--enrol cần tên tệp" "--enrol needs a file"; ENROL=$2; shift 2 ;;
    --enrol=*) ENROL=${1#*=}; shift ;;
    --root) [ $# -ge 2 ] || fail "--root cần một thư mục" "--root needs a directory"; ROOT=$2; shift 2 ;;
    --root=*) ROOT=${1#*=}; shift ;;
    --remove) REMOVE=1; shift ;;
    --purge) PURGE=1; shift ;;
    --no-start) NO_START=1; shift ;;
    --replace-config) REPLACE_CONFIG=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; fail "tham số không hiểu được: $1" "unknown argument: $1" ;;
  esac
done
[ "$PURGE" = 0 ] || [ "$REMOVE" = 1 ] || fail "--purge chỉ dùng cùng --remove" "--purge goes with --remove"
[ "$REMOVE" = 0 ] || [ -z "$ENROL" ] || fail "--enrol không dùng cùng --remove" "--enrol does not go with --remove"
[ "$REPLACE_CONFIG" = 0 ] || [ -n "$ENROL" ] || fail "--replace-config chỉ dùng cùng --enrol" "--replace-config goes with --enrol"

# --root: every path below is prefixed with $P ("" for /). The files written keep the paths of the
# installed system (/etc/hatang/...) inside them.
case "$ROOT" in
  /*) ;;
  *) ROOT="$PWD/$ROOT" ;;
esac
ROOT=$(realpath -m -- "$ROOT")
if [ "$ROOT" = / ]; then P=""; else P=$ROOT; fi
SYSTEM_ROOT=0
[ -n "$P" ] || SYSTEM_ROOT=1
if [ "$SYSTEM_ROOT" = 1 ] && [ "$(id -u)" != 0 ]; then
  fail "cần quyền root: chạy lại bằng sudo ./install-agent.sh ..." "must run as root: sudo ./install-agent.sh ..."
fi
if [ -n "$ENROL" ]; then
  ENROL=$(realpath -m -- "$ENROL")
  if [ ! -f "$ENROL" ] || [ ! -r "$ENROL" ]; then
    fail "không đọc được gói đăng ký $ENROL" "cannot read the enrolment bundle $ENROL"
  fi
fi

OPT=$P/opt/hatang
VENV=$OPT/venv
RELEASES=$OPT/releases
ETC=$P/etc/hatang
SECRETS=$ETC/secrets
UNIT_FILE=$P/etc/systemd/system/$UNIT
DROPIN_DIR=$P/etc/systemd/system/$UNIT.d
DROPIN=$DROPIN_DIR/credentials.conf
STATE=$P/var/lib/hatang
# What the installer wrote (root only, outside the hatang user's reach): "manifest", one system path a line
# (without the --root prefix), of every file and directory it wrote or created; --purge deletes those and
# nothing else. "enrolment.sha256": the SHA-256 of the last enrolment bundle installed completely (Ansible
# compares it with the controller's bundle to copy the bundle only when it changed).
MANIFEST_DIR=$P/var/lib/hatang-install
MANIFEST=$MANIFEST_DIR/manifest
ENROLMENT_SUM=$MANIFEST_DIR/enrolment.sha256
# Other hatang services of this machine (the central host sometimes runs an agent too): while one of these
# exists, the hatang user and the venv stay on --remove / --purge.
OTHER_HATANG=()
for path in /etc/systemd/system/hatang-collector.service /etc/hatang/fleet /etc/hatang/collector.yaml; do
  if [ -e "$P$path" ]; then OTHER_HATANG+=("$path"); fi
done

CHANGED=0
UNIT_CHANGED=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/hatang-install-XXXXXX")

SYSTEMD=0
[ "$SYSTEM_ROOT" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && SYSTEMD=1

# ---------------------------------------------------------------------------------------------------
# Files, written only when different (so a second run changes no mtime)

WROTE=()  # system paths written or created by this run, for the manifest
record() {  # record PATH...: for the manifest, without the --root prefix
  local path
  for path in "$@"; do WROTE+=("${path#"$P"}"); done
}
# manifest_entries: the manifest's paths and this run's, sorted, once each
manifest_entries() {
  {
    if [ -f "$MANIFEST" ]; then grep -v '^#' -- "$MANIFEST" || true; fi
    if [ ${#WROTE[@]} -gt 0 ]; then printf '%s\n' "${WROTE[@]}"; fi
  } | LC_ALL=C sort -u
}

owner_of() { stat -c %U:%G -- "$1"; }
mode_of() { stat -c %a -- "$1"; }

# ensure_dir DIR MODE [OWNER:GROUP]
ensure_dir() {
  local dir=$1 mode=$2 owner=${3:-}
  if [ ! -d "$dir" ]; then
    mkdir -p -- "$dir"
    record "$dir"
    CHANGED=1
  fi
  if [ "$(mode_of "$dir")" != "${mode#0}" ]; then chmod "$mode" -- "$dir"; CHANGED=1; fi
  if [ -n "$owner" ] && [ "$(owner_of "$dir")" != "$owner" ]; then chown "$owner" -- "$dir"; CHANGED=1; fi
}

# put_file SRC DEST MODE [OWNER:GROUP]: returns 0 when DEST was changed, 1 when it was already so.
put_file() {
  local src=$1 dest=$2 mode=$3 owner=${4:-} changed=1 tmp
  if [ ! -f "$dest" ] || [ -L "$dest" ] || ! cmp -s -- "$src" "$dest"; then
    tmp=$(mktemp "$(dirname -- "$dest")/.$(basename -- "$dest").XXXXXX")
    cat -- "$src" >"$tmp"
    chmod "$mode" -- "$tmp"
    [ -z "$owner" ] || chown "$owner" -- "$tmp"
    mv -f -- "$tmp" "$dest"
    changed=0
  else
    if [ "$(mode_of "$dest")" != "${mode#0}" ]; then chmod "$mode" -- "$dest"; changed=0; fi
    if [ -n "$owner" ] && [ "$(owner_of "$dest")" != "$owner" ]; then chown "$owner" -- "$dest"; changed=0; fi
  fi
  [ "$changed" = 1 ] || CHANGED=1
  return "$changed"
}

remove_path() {  # remove_path PATH...: rm -rf, counted as a change when something was there
  local path
  for path in "$@"; do
    if [ -e "$path" ] || [ -L "$path" ]; then
      rm -rf -- "$path"
      CHANGED=1
    fi
  done
}

finish() {
  if [ "$CHANGED" = 1 ]; then
    info "đã thay đổi" "changed"
    echo "HATANG-INSTALL: changed"
  else
    info "không thay đổi" "unchanged"
    echo "HATANG-INSTALL: unchanged"
  fi
  exit 0
}

systemctl_() {  # systemctl that reports its failure in both languages
  systemctl "$@" || fail "lệnh systemctl $* thất bại; xem: journalctl -u $UNIT -n 50" \
    "systemctl $* failed; see: journalctl -u $UNIT -n 50"
}

# ---------------------------------------------------------------------------------------------------
# --remove

if [ "$REMOVE" = 1 ]; then
  if [ "$SYSTEMD" = 1 ] && [ -f "$UNIT_FILE" ]; then
    if systemctl is-active --quiet "$UNIT" || systemctl is-enabled --quiet "$UNIT" 2>/dev/null; then
      info "Dừng và tắt dịch vụ $UNIT" "stopping and disabling $UNIT"
      systemctl disable --now "$UNIT" || true
      CHANGED=1
    fi
  fi
  UNIT_REMOVED=0
  if [ -e "$UNIT_FILE" ] || [ -e "$DROPIN" ]; then UNIT_REMOVED=1; fi
  remove_path "$DROPIN" "$UNIT_FILE"
  if [ -d "$DROPIN_DIR" ]; then rmdir --ignore-fail-on-non-empty -- "$DROPIN_DIR"; fi
  if [ "$SYSTEMD" = 1 ] && [ "$UNIT_REMOVED" = 1 ]; then systemctl daemon-reload || true; fi
  if [ ${#OTHER_HATANG[@]} -gt 0 ]; then
    if [ -e "$VENV" ] || [ -e "$RELEASES" ]; then
      info "Giữ $VENV: hatang khác trên máy này còn dùng nó (${OTHER_HATANG[*]})" \
           "kept $VENV: another hatang on this machine uses it (${OTHER_HATANG[*]})"
    fi
  else
    remove_path "$VENV" "$RELEASES"
    if [ -d "$OPT" ]; then rmdir --ignore-fail-on-non-empty -- "$OPT"; fi
  fi
  if [ "$PURGE" = 1 ]; then
    # Only what the installer wrote (the manifest), deepest first; a directory only when it is empty.
    if [ -f "$MANIFEST" ]; then
      info "Xoá các tệp cấu hình do trình cài ghi và dữ liệu $STATE" \
           "purging the config files the installer wrote and the state $STATE"
      while IFS= read -r entry; do
        case "$entry" in /*) ;; *) continue ;; esac
        path=$P$entry
        if [ -L "$path" ] || [ -f "$path" ]; then
          rm -f -- "$path"
          CHANGED=1
        elif [ -d "$path" ] && [ "$path" != "$MANIFEST_DIR" ] && rmdir -- "$path" 2>/dev/null; then
          CHANGED=1
        fi
      done < <(grep -v '^#' -- "$MANIFEST" | LC_ALL=C sort -ru)
    fi
    remove_path "$STATE" "$MANIFEST_DIR"
    if [ -e "$ETC" ]; then
      info "Giữ $ETC: trong đó còn tệp không do trình cài này ghi" \
           "kept $ETC: it holds files this installer did not write"
    fi
    if [ ${#OTHER_HATANG[@]} -gt 0 ]; then
      warn "không xoá người dùng hatang: dịch vụ hatang khác trên máy này dùng nó (${OTHER_HATANG[*]})" \
           "not deleting the user hatang: another hatang service on this machine uses it (${OTHER_HATANG[*]})"
    elif [ "$SYSTEM_ROOT" = 1 ] && getent passwd hatang >/dev/null 2>&1; then
      userdel hatang || warn "không xoá được người dùng hatang" "could not delete the user hatang"
      CHANGED=1
    fi
  else
    if [ -e "$ETC" ]; then
      info "Giữ lại cấu hình $ETC (xoá hẳn: --remove --purge)" \
           "kept the config $ETC (to delete it too: --remove --purge)"
    fi
  fi
  finish
fi

# ---------------------------------------------------------------------------------------------------
# Checks first: everything that is missing, at once, before anything is changed

problems=()
problem() { problems+=("LỖI: $1"$'\n'"ERROR: $2"); }

for tool in tar sha256sum gzip cmp diff stat mktemp realpath; do
  command -v "$tool" >/dev/null 2>&1 \
    || problem "thiếu lệnh '$tool' (cài gói coreutils / tar / gzip / diffutils)" \
               "the command '$tool' is missing (install the package coreutils / tar / gzip / diffutils)"
done
if [ "$SYSTEM_ROOT" = 1 ]; then
  for tool in getent useradd; do
    command -v "$tool" >/dev/null 2>&1 \
      || problem "thiếu lệnh '$tool' (gói passwd / libc-bin)" "the command '$tool' is missing (package passwd / libc-bin)"
  done
fi
for f in SHA256SUMS BUNDLE-INFO hatang-agent.service; do
  [ -f "$HERE/$f" ] || problem "thiếu tệp $f cạnh install-agent.sh: hãy chạy từ thư mục đã giải nén của gói" \
                               "$f is missing beside install-agent.sh: run it from the unpacked bundle"
done

BUNDLE_VERSION=$(sed -n 's/^version=//p' "$HERE/BUNDLE-INFO" 2>/dev/null || true)
BUNDLE_TARGETS=$(sed -n 's/^targets=//p' "$HERE/BUNDLE-INFO" 2>/dev/null || true)
PIP_WHEEL=$HERE/pip/$(sed -n 's/^pip=//p' "$HERE/BUNDLE-INFO" 2>/dev/null || true)

PY=${HATANG_PYTHON:-}
PY_SOURCE="HATANG_PYTHON"
if [ -z "$PY" ]; then
  PY=$(command -v python3 || true)
  PY_SOURCE="PATH"
fi
TARGET=""
if [ -z "$PY" ]; then
  problem "không tìm thấy python3: cài gói python3 (Debian 12 có Python 3.11, Ubuntu 24.04 có Python 3.12)" \
          "python3 not found: install the package python3 (Debian 12 has Python 3.11, Ubuntu 24.04 Python 3.12)"
elif ! version_text=$("$PY" --version 2>&1); then
  problem "$PY (từ $PY_SOURCE) không chạy được: $version_text" "$PY (from $PY_SOURCE) does not run: $version_text"
else
  py_version=$(sed -n 's/^Python \([0-9][0-9.]*\).*/\1/p' <<<"$version_text" | head -1)
  if [ -z "$py_version" ]; then
    problem "$PY không phải Python (nó in: $version_text)" "$PY is not a Python (it printed: $version_text)"
  elif [ "$(printf '%s\n3.11\n' "$py_version" | sort -V | head -1)" != 3.11 ]; then
    problem "Python $py_version ($PY) quá cũ: hatang cần Python 3.11 trở lên (Debian 12 hoặc Ubuntu 24.04)" \
            "Python $py_version ($PY) is too old: hatang needs Python 3.11 or newer (Debian 12 or Ubuntu 24.04)"
  else
    # shellcheck disable=SC2016
    read -r py_impl py_minor py_platform libc_name libc_version < <("$PY" -I -B -c '
import platform, sys, sysconfig
name, version = platform.libc_ver()
print(sys.implementation.name, "%d.%d" % sys.version_info[:2], sysconfig.get_platform(), name or "-", version or "-")
' 2>/dev/null || echo "? ? ? ? ?")
    arch=${py_platform#linux-}
    [ "$arch" != arm64 ] || arch=aarch64
    TARGET="cp${py_minor/./}-$arch"
    if [ "$py_impl" != cpython ]; then
      problem "$PY là $py_impl, gói này cần CPython" "$PY is $py_impl; this bundle needs CPython"
      TARGET=""
    elif [ ! -f "$HERE/targets/$TARGET.txt" ]; then
      problem "gói này không có wheel cho Python $py_minor trên $arch ($PY, nền tảng $py_platform); gói có: $BUNDLE_TARGETS (cp311 = Python 3.11 / Debian 12, cp312 = Python 3.12 / Ubuntu 24.04)" \
              "this bundle has no wheels for Python $py_minor on $arch ($PY, platform $py_platform); it has: $BUNDLE_TARGETS (cp311 = Python 3.11 / Debian 12, cp312 = Python 3.12 / Ubuntu 24.04)"
      TARGET=""
    else
      need_glibc=$(cat "$HERE/targets/$TARGET.glibc" 2>/dev/null || echo 2.17)
      if [ "$libc_name" != glibc ]; then
        problem "Python $PY không dùng glibc ($libc_name): các wheel cần glibc $need_glibc trở lên" \
                "$PY does not use glibc ($libc_name): the wheels need glibc $need_glibc or newer"
      elif [ "$(printf '%s\n%s\n' "$libc_version" "$need_glibc" | sort -V | head -1)" != "$need_glibc" ]; then
        problem "glibc $libc_version quá cũ: các wheel cho $TARGET cần glibc $need_glibc trở lên" \
                "glibc $libc_version is too old: the wheels for $TARGET need glibc $need_glibc or newer"
      fi
    fi
  fi
fi

if [ ${#problems[@]} -gt 0 ]; then
  printf '%s\n' "${problems[@]}" >&2
  echo "HATANG-INSTALL: failed"
  REPORTED=1
  exit 1
fi

# The bundle is whole (a copy on a USB stick can be cut short).
if ! (cd "$HERE" && sha256sum --check --quiet --strict SHA256SUMS) >"$TMP/sums.log" 2>&1; then
  sed 's/^/    /' "$TMP/sums.log" >&2
  fail "gói bị hỏng (tổng kiểm SHA256SUMS không khớp, các tệp ở trên): chép lại gói từ bản gốc" \
       "the bundle is damaged (SHA256SUMS mismatch, files above): copy the bundle again from the original"
fi
[ -f "$PIP_WHEEL" ] || fail "thiếu wheel pip trong gói" "the bundle has no pip wheel"

# ---------------------------------------------------------------------------------------------------
# The enrolment bundle: read and checked before anything is written

ENROL_DIR=""
SECRET_NAME='^[A-Za-z0-9][A-Za-z0-9._-]*$'
if [ -n "$ENROL" ]; then
  tar -tvzf "$ENROL" >"$TMP/enrol.list" 2>"$TMP/enrol.err" \
    || fail "không đọc được gói đăng ký $ENROL: $(head -3 "$TMP/enrol.err")" \
            "cannot read the enrolment bundle $ENROL: $(head -3 "$TMP/enrol.err")"
  tar -tzf "$ENROL" >"$TMP/enrol.names"
  members=()
  while IFS= read -r name; do
    clean=${name#./}
    case "$clean" in
      agent.yaml|ca.crt|client.crt|centre.pub|DOC-TRUOC.txt) members+=("$name") ;;
      ""|secrets|secrets/) ;;
      secrets/*)
        base=${clean#secrets/}
        [[ "$base" =~ $SECRET_NAME ]] \
          || fail "tên tệp bí mật không hợp lệ trong gói đăng ký: $name" "invalid secret file name in the enrolment bundle: $name"
        members+=("$name") ;;
      *) warn "bỏ qua '$name' trong gói đăng ký" "ignoring '$name' in the enrolment bundle" ;;
    esac
  done <"$TMP/enrol.names"
  # Regular files and directories only (no links or devices).
  if grep -qv '^[-d]' "$TMP/enrol.list"; then
    fail "gói đăng ký chứa mục không phải tệp thường: $(grep -v '^[-d]' "$TMP/enrol.list" | head -3)" \
         "the enrolment bundle holds something other than plain files: $(grep -v '^[-d]' "$TMP/enrol.list" | head -3)"
  fi
  ENROL_DIR=$TMP/enrol
  mkdir -m 0700 "$ENROL_DIR"
  [ ${#members[@]} -eq 0 ] || tar -xzf "$ENROL" -C "$ENROL_DIR" --no-same-owner --no-same-permissions "${members[@]}"
  [ -f "$ENROL_DIR/agent.yaml" ] || fail "gói đăng ký $ENROL thiếu agent.yaml" "the enrolment bundle $ENROL has no agent.yaml"
  [ -s "$ENROL_DIR/secrets/mqtt-password" ] \
    || fail "gói đăng ký $ENROL thiếu secrets/mqtt-password" "the enrolment bundle $ENROL has no secrets/mqtt-password"
fi

info "Cài hatang $BUNDLE_VERSION cho $TARGET (Python $py_version, $PY) vào ${ROOT}" \
     "installing hatang $BUNDLE_VERSION for $TARGET (Python $py_version, $PY) into $ROOT"

# ---------------------------------------------------------------------------------------------------
# The user and the state directory (first: the config files belong to its group)

OWNER_ROOT=""
OWNER_CONFIG=""
OWNER_STATE=""
if [ "$SYSTEM_ROOT" = 1 ]; then
  if ! getent passwd hatang >/dev/null; then
    info "Tạo người dùng hệ thống hatang" "creating the system user hatang"
    # A group hatang made before (by hand, or left by an earlier user) becomes the user's group.
    if getent group hatang >/dev/null; then group_option=(-g hatang); else group_option=(--user-group); fi
    useradd --system "${group_option[@]}" --home-dir /var/lib/hatang --no-create-home \
      --shell /usr/sbin/nologin --comment "hatang agent" hatang
    CHANGED=1
  fi
  OWNER_ROOT=root:root
  OWNER_CONFIG=root:hatang
  OWNER_STATE=hatang:hatang
else
  info "Thư mục gốc $ROOT không phải /: không tạo người dùng hatang, không đổi chủ sở hữu tệp" \
       "root $ROOT is not /: the user hatang is not created and file owners are not set"
fi
ensure_dir "$STATE" 0700 "$OWNER_STATE"
ensure_dir "$MANIFEST_DIR" 0700 "$OWNER_ROOT"

# ---------------------------------------------------------------------------------------------------
# The venv: /opt/hatang/venv -> releases/hatang-<version>-<key>, the key naming the wheel set and the
# interpreter. The same key installed and complete: nothing to do. Otherwise the new release is made
# beside the old one and the link switched in one rename (the running agent keeps its files until
# restarted).

py_real=$(realpath -- "$PY")
key=$( { echo "$TARGET"; echo "$py_real"; echo "$py_version"
         while IFS= read -r wheel; do
           grep -F "  wheels/$wheel" "$HERE/SHA256SUMS" || echo "missing $wheel"
         done <"$HERE/targets/$TARGET.txt"; } | sha256sum | cut -c1-12)
RELEASE=hatang-$BUNDLE_VERSION-$key
release_ok() {
  [ -f "$RELEASES/$RELEASE/.installed" ] && [ -x "$RELEASES/$RELEASE/bin/hatang" ] \
    && "$RELEASES/$RELEASE/bin/python" -I -B -c '' 2>/dev/null
}
if [ "$(readlink -- "$VENV" 2>/dev/null || true)" = "releases/$RELEASE" ] && release_ok; then
  info "Môi trường Python $VENV đã đúng phiên bản ($RELEASE)" "the venv $VENV is up to date ($RELEASE)"
else
  ensure_dir "$OPT" 0755 "$OWNER_ROOT"
  ensure_dir "$RELEASES" 0755 "$OWNER_ROOT"
  if ! release_ok; then
    info "Tạo môi trường Python $RELEASES/$RELEASE (không cần mạng)" "creating the venv $RELEASES/$RELEASE (offline)"
    rm -rf -- "${RELEASES:?}/$RELEASE"
    "$PY" -m venv --without-pip "$RELEASES/$RELEASE" 2>"$TMP/venv.log" \
      || fail "không tạo được venv bằng $PY -m venv: $(tail -3 "$TMP/venv.log")" \
              "$PY -m venv failed: $(tail -3 "$TMP/venv.log")"
    wheels=()
    while IFS= read -r wheel; do wheels+=("$HERE/wheels/$wheel"); done <"$HERE/targets/$TARGET.txt"
    if ! PYTHONDONTWRITEBYTECODE=1 "$RELEASES/$RELEASE/bin/python" "$PIP_WHEEL/pip" install --isolated \
        --no-index --find-links "$HERE/wheels" --only-binary=:all: --no-cache-dir \
        --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
        --progress-bar off "${wheels[@]}" >"$TMP/pip.log" 2>&1; then
      sed 's/^/    pip: /' "$TMP/pip.log" | tail -30 >&2
      rm -rf -- "${RELEASES:?}/$RELEASE"
      fail "pip không cài được từ các wheel của gói (ở trên)" "pip could not install from the bundle's wheels (above)"
    fi
    installed=$(PYTHONDONTWRITEBYTECODE=1 "$RELEASES/$RELEASE/bin/hatang" --version 2>&1 || true)
    [[ "$installed" == *"$BUNDLE_VERSION"* ]] \
      || fail "hatang vừa cài không chạy được: $installed" "the installed hatang does not run: $installed"
    { echo "version=$BUNDLE_VERSION"; echo "target=$TARGET"; echo "python=$py_real $py_version"
      echo "wheels=$(paste -sd' ' "$HERE/targets/$TARGET.txt")"; } >"$RELEASES/$RELEASE/.installed"
    [ -z "$OWNER_ROOT" ] || chown -R "$OWNER_ROOT" -- "$RELEASES/$RELEASE"
  fi
  if [ -d "$VENV" ] && [ ! -L "$VENV" ]; then
    rm -rf -- "$VENV"  # a venv made by other means: replaced by the link
  fi
  ln -sfn "releases/$RELEASE" "$OPT/.venv.new"
  mv -Tf -- "$OPT/.venv.new" "$VENV"
  info "$VENV -> releases/$RELEASE" "$VENV -> releases/$RELEASE"
  CHANGED=1
fi

# ---------------------------------------------------------------------------------------------------
# Configuration from the enrolment bundle. The enrolment's certificates and secrets (a rotated password)
# are always installed. agent.yaml is written only when it is absent, or still identical to the previous
# enrolment's copy (agent.yaml.enrolled: never edited on this box); an agent.yaml edited here (devices
# added at the office) is kept, and what the new enrolment changed is shown, unless --replace-config
# (then it is saved as agent.yaml.bak-<time> first).

if [ -n "$ENROL_DIR" ]; then
  ensure_dir "$ETC" 0755 "$OWNER_ROOT"
  ensure_dir "$SECRETS" 0700 "$OWNER_ROOT"
  new=$ENROL_DIR/agent.yaml
  config=$ETC/agent.yaml
  enrolled=$ETC/agent.yaml.enrolled
  # (agent.yaml goes into the manifest when written or identical to the enrolment's; one kept here stays
  # in the manifest only if an earlier run wrote it: a file made by hand before is not the installer's.)
  if [ ! -e "$config" ] && [ ! -L "$config" ]; then
    put_file "$new" "$config" 0640 "$OWNER_CONFIG" || true
    record "$config"
    info "Đã ghi $config" "wrote $config"
  elif cmp -s -- "$new" "$config"; then
    put_file "$new" "$config" 0640 "$OWNER_CONFIG" || true  # the same: only its mode and owner
    record "$config"
  elif [ -f "$enrolled" ] && cmp -s -- "$config" "$enrolled"; then
    put_file "$new" "$config" 0640 "$OWNER_CONFIG" || true
    record "$config"
    info "$config chưa sửa tại máy này: thay bằng bản của gói đăng ký mới" \
         "$config was not edited on this box: replaced by the new enrolment's"
  elif [ "$REPLACE_CONFIG" = 1 ]; then
    backup=$ETC/agent.yaml.bak-$(date +%Y%m%d-%H%M%S)
    cp -p -- "$config" "$backup"
    record "$backup" "$config"
    put_file "$new" "$config" 0640 "$OWNER_CONFIG" || true
    info "--replace-config: $config cũ (có sửa tại máy) được lưu thành $backup rồi thay bằng bản của gói đăng ký" \
         "--replace-config: the previous $config (edited on this box) was saved as $backup and replaced"
  elif [ -f "$enrolled" ] && cmp -s -- "$new" "$enrolled"; then
    info "$config có sửa đổi tại máy: giữ nguyên" "$config has changes made on this box: kept"
  else
    # Edited here, and the centre's copy changed: keep the office's file and show the centre's change.
    warn "GIỮ NGUYÊN $config (đã sửa tại máy này, ví dụ thêm thiết bị); bản mới của gói đăng ký được lưu thành $enrolled. Khác biệt của bản mới so với bản đăng ký trước (nếu cần, chép vào $config bằng tay, hoặc chạy lại với --replace-config để thay hẳn, bản cũ được lưu thành agent.yaml.bak-<giờ>):" \
         "KEPT $config (edited on this box, e.g. devices added); the new enrolment's copy is saved as $enrolled. What the new enrolment changes against the previous one (carry it into $config by hand if needed, or run again with --replace-config to replace the file, saving it as agent.yaml.bak-<time>):"
    if [ -f "$enrolled" ]; then
      diff -u --label "agent.yaml.enrolled (trước / previous)" --label "agent.yaml (gói đăng ký mới / new enrolment)" \
        -- "$enrolled" "$new" | sed 's/^/    /' >&2 || true
    else
      diff -u --label "$config (trên máy / on this box)" --label "agent.yaml (gói đăng ký mới / new enrolment)" \
        -- "$config" "$new" | sed 's/^/    /' >&2 || true
    fi
  fi
  put_file "$new" "$enrolled" 0640 "$OWNER_CONFIG" || true
  record "$enrolled"
  for f in ca.crt client.crt centre.pub; do
    if [ -f "$ENROL_DIR/$f" ]; then
      if put_file "$ENROL_DIR/$f" "$ETC/$f" 0644 "$OWNER_ROOT"; then info "Đã ghi $ETC/$f" "wrote $ETC/$f"; fi
      record "$ETC/$f"
    fi
  done
  for secret in "$ENROL_DIR"/secrets/*; do
    [ -f "$secret" ] || continue
    name=$(basename -- "$secret")
    if put_file "$secret" "$SECRETS/$name" 0600 "$OWNER_ROOT"; then
      info "Đã ghi $SECRETS/$name" "wrote $SECRETS/$name"
    fi
    record "$SECRETS/$name"
  done
fi

# The secrets the installed enrolments delivered (in the manifest), still present: nothing else in
# /etc/hatang/secrets (the central host keeps its collector's password there) is touched or loaded.
OUR_SECRETS=()
while IFS= read -r entry; do
  case "$entry" in
    /etc/hatang/secrets/*)
      name=${entry#/etc/hatang/secrets/}
      if [[ "$name" =~ $SECRET_NAME ]] && [ -f "$SECRETS/$name" ] && [ ! -L "$SECRETS/$name" ]; then
        OUR_SECRETS+=("$name")
      fi ;;
  esac
done < <(manifest_entries)
if [ -d "$SECRETS" ]; then
  ensure_dir "$SECRETS" 0700 "$OWNER_ROOT"
  for name in ${OUR_SECRETS[@]+"${OUR_SECRETS[@]}"}; do
    if [ "$(mode_of "$SECRETS/$name")" != 600 ]; then chmod 0600 -- "$SECRETS/$name"; CHANGED=1; fi
  done
fi

# ---------------------------------------------------------------------------------------------------
# The unit and its credentials drop-in: one LoadCredential= for every secret of the enrolment but
# mqtt-password (which the unit carries itself), so that a secret the office does not have never fails
# the unit.

ensure_dir "$P/etc/systemd/system" 0755
if put_file "$HERE/hatang-agent.service" "$UNIT_FILE" 0644; then UNIT_CHANGED=1; info "Đã ghi $UNIT_FILE" "wrote $UNIT_FILE"; fi
record "$UNIT_FILE"
{
  echo "# Written by install-agent.sh (hatang): one LoadCredential= for each secret file its enrolment bundles"
  echo "# put into /etc/hatang/secrets/, but mqtt-password, which $UNIT loads itself. Rewritten at every run."
  echo "[Service]"
  for name in ${OUR_SECRETS[@]+"${OUR_SECRETS[@]}"}; do
    if [ "$name" != mqtt-password ]; then echo "LoadCredential=$name:/etc/hatang/secrets/$name"; fi
  done
} >"$TMP/credentials.conf"
ensure_dir "$DROPIN_DIR" 0755
if put_file "$TMP/credentials.conf" "$DROPIN" 0644; then UNIT_CHANGED=1; info "Đã ghi $DROPIN" "wrote $DROPIN"; fi
record "$DROPIN"

# The manifest, before the service is touched: a failure below still leaves it complete.
{
  echo "# Written by install-agent.sh (hatang): the paths it wrote; --remove --purge deletes these only."
  manifest_entries
} >"$TMP/manifest"
put_file "$TMP/manifest" "$MANIFEST" 0600 "$OWNER_ROOT" || true

# ---------------------------------------------------------------------------------------------------
# systemd. Releases other than the current one are deleted only when no running agent can still use
# them: the service was (re)started by this run, or is not running.

old_releases() {  # the releases beside the current one, one a line
  local old
  for old in "$RELEASES"/*; do
    if [ -e "$old" ] && [ "$(basename -- "$old")" != "$RELEASE" ]; then printf '%s\n' "$old"; fi
  done
  return 0
}
OLD_RELEASES=$(old_releases)
ACTIVE=0
RESTARTED=0
if [ "$SYSTEMD" = 1 ]; then
  if [ "$UNIT_CHANGED" = 1 ]; then systemctl_ daemon-reload; fi
  if systemctl is-active --quiet "$UNIT"; then ACTIVE=1; fi
  if [ ! -f "$ETC/agent.yaml" ]; then
    warn "chưa có $ETC/agent.yaml: dịch vụ chưa được bật; chạy lại với --enrol GOI-DANG-KY.tar.gz" \
         "no $ETC/agent.yaml yet: the service is not enabled; run again with --enrol ENROL.tar.gz"
  else
    if ! systemctl is-enabled --quiet "$UNIT" 2>/dev/null; then
      systemctl_ enable "$UNIT"
      CHANGED=1
    fi
    if [ "$NO_START" = 0 ]; then
      if [ "$ACTIVE" = 0 ]; then
        info "Khởi động $UNIT" "starting $UNIT"
        systemctl_ start "$UNIT"
        CHANGED=1
        RESTARTED=1
      elif [ "$CHANGED" = 1 ] || [ "$UNIT_CHANGED" = 1 ] || [ -n "$OLD_RELEASES" ]; then
        # (old releases left by a --no-start run: the running agent may still be the old one)
        info "Khởi động lại $UNIT" "restarting $UNIT"
        systemctl_ restart "$UNIT"
        CHANGED=1
        RESTARTED=1
      fi
    fi
  fi
elif [ "$SYSTEM_ROOT" = 0 ]; then
  info "Cài vào $ROOT: không bật, không khởi động dịch vụ" "installed under $ROOT: the service is not enabled or started"
else
  warn "systemd không chạy trên máy này: đã cài $UNIT nhưng chưa khởi động" \
       "systemd is not running here: $UNIT is installed but not started"
fi

if [ -n "$OLD_RELEASES" ]; then
  if [ "$ACTIVE" = 1 ] && [ "$RESTARTED" = 0 ]; then
    info "Giữ bản cũ trong $RELEASES: $UNIT đang chạy từ đó và chưa được khởi động lại; chạy lại trình cài không có --no-start để khởi động lại và dọn" \
         "kept the previous release in $RELEASES: $UNIT runs from it and was not restarted; run the installer again without --no-start to restart it and clean up"
  else
    while IFS= read -r old; do
      rm -rf -- "$old"
    done <<<"$OLD_RELEASES"
    CHANGED=1
  fi
fi

# Installed completely: the enrolment bundle's checksum, for Ansible (copy the bundle only when it changed).
if [ -n "$ENROL" ]; then
  sha256sum <"$ENROL" | cut -c1-64 >"$TMP/enrolment.sha256"
  put_file "$TMP/enrolment.sha256" "$ENROLMENT_SUM" 0600 "$OWNER_ROOT" || true
fi

if [ "$SYSTEM_ROOT" = 1 ]; then
  info "Kiểm tra cấu hình: sudo $VENV/bin/hatang check --credentials $SECRETS -c $ETC/agent.yaml" \
       "check the config with the command above"
fi
finish
