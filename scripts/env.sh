# Sourced by the other scripts: put a private uv (installed by setup.sh) on PATH.
if ! command -v uv >/dev/null 2>&1 && [[ -x "$(dirname "${BASH_SOURCE[0]}")/../.tools/uv/bin/uv" ]]; then
  PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/uv/bin:$PATH"
fi
export UV_PYTHON_DOWNLOADS=never
export PATH
