# Shared by run.sh and test.sh: make the virtual environment and install requirements.lock into it.
# VF_VENV picks another environment (default .venv in the project); VF_PYTHON the interpreter.
# Install is skipped when the lock file has not changed since the last install into that venv.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${VF_VENV:-$ROOT/.venv}
if [ -z "${VF_PYTHON:-}" ]; then
  if command -v python3.11 >/dev/null 2>&1; then VF_PYTHON=python3.11; else VF_PYTHON=python3; fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating virtual environment in $VENV"
  "$VF_PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.requirements.lock.sha256"
want=$(sha256sum requirements.lock | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing requirements.lock (the first time takes a few minutes: PyTorch is large)"
  "$PY" -m pip install --disable-pip-version-check -q --upgrade pip
  "$PY" -m pip install --disable-pip-version-check -q -r requirements.lock
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
