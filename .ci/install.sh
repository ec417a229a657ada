#!/usr/bin/env bash
# Idempotent install: Debian packages (when root), .venv, torch, then the project.
# Called by `make install`; safe to run again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
APT_PACKAGES="ffmpeg fluidsynth fluid-soundfont-gm musescore-general-soundfont timgm6mb-soundfont \
festival festvox-kallpc16k latexmk texlive-latex-extra texlive-latex-recommended \
texlive-fonts-recommended chromium chromium-driver poppler-utils"

missing=""
for pkg in $APT_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "install: apt-get install$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "install: missing Debian packages. Run as root:"
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing"
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"

# torch first, so that nothing later pulls a CUDA build on a CPU machine: PyPI's Linux
# wheel is the CUDA one (with ~3 GB of nvidia-* wheels), so a Linux machine without an
# NVIDIA GPU gets the +cpu build from PyTorch's CPU index instead.
# A torch that is already there (a user's own CUDA build, say) is left alone.
TORCH_ARGS=""
if [ "$(uname -s)" = "Linux" ] && ! nvidia-smi -L >/dev/null 2>&1 && [ -z "${TORCH_CUDA:-}" ]; then
  case "$TORCH_SPEC" in *+*) ;; *==*) TORCH_SPEC="$TORCH_SPEC+cpu" ;; esac
  # one retry: where that index cannot be reached (offline mirrors), fail over quickly
  TORCH_ARGS="--retries 1 --extra-index-url https://download.pytorch.org/whl/cpu"
fi
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "install: $TORCH_SPEC"
  $PIP install $TORCH_ARGS "$TORCH_SPEC"
fi

stamp="$VENV/.stemprover-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "install: pip install -e .[dev]"
  $PIP install -e ".[dev]"
  # Both declare torchaudio, which this project never needs: skip their dependencies.
  $PIP install --no-deps "demucs==4.1.0" "openunmix==1.3.0"
  touch "$stamp"
fi
echo "install: ok ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
