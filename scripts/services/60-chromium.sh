# Headless Chromium and chromedriver, for the demo's browser test
# (examples/tests/browser.rs). Debian's packages; installed when missing.
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
if [ ! -x "$CHROMEDRIVER" ] || ! command -v chromium >/dev/null 2>&1; then
    if [ "$CHROMEDRIVER" = /usr/bin/chromedriver ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing chromium and chromium-driver (apt-get)"
        sudo_cmd=""
        [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
        { $sudo_cmd apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver; } \
            >"$SERVICES_DIR/chromium-install.log" 2>&1 || true
    fi
    [ -x "$CHROMEDRIVER" ] && command -v chromium >/dev/null 2>&1 || service_missing Chromium \
        "no chromedriver at $CHROMEDRIVER or no chromium (apt-get install chromium chromium-driver; see $SERVICES_DIR/chromium-install.log; or set CHROMEDRIVER)"
fi
