# Sourced by the test and bench scripts that need a Debian package:
#   apt_install PACKAGE...   installs them quietly when running as root with
#                            apt-get, once more after `apt-get update` if the
#                            first try fails; status 0 when apt-get succeeded.
apt_install() {
    [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 && return 0
    apt-get update -q >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1
}
