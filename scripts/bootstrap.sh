#!/usr/bin/env bash
# Set up everything songcorpus needs on a fresh machine; safe to run again (it skips what is done).
#   - the Debian packages fluidsynth (renders the synthetic corpus' accompaniment) and ffmpeg (the
#     libraries Hugging Face datasets needs for audio), installed when running as root, otherwise
#     named with the exact command to run;
#   - uv (from PyPI, into .tools/uv) and the Python environment .venv from uv.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
PYTHON=${SONGCORPUS_PYTHON:-python3.11}

# Debian packages: fluidsynth renders the synthetic corpus; FFmpeg's shared libraries (4 to 7) are what
# torchcodec loads when Hugging Face `datasets` reads audio columns (the read_with_hf recipe).
missing=()
command -v fluidsynth >/dev/null 2>&1 || missing+=(fluidsynth)
ldconfig -p 2>/dev/null | grep -Eq 'libavutil\.so\.5[6-9] ' || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing the Debian packages ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing ${missing[*]}; install with: sudo apt-get install ${missing[*]}" >&2
    echo "           (fluidsynth: only the synthetic corpus needs it; ffmpeg: only the Hugging Face recipe)" >&2
  fi
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "bootstrap: $PYTHON not found; install Python 3.11 or set SONGCORPUS_PYTHON=/path/to/python3.11" >&2
  exit 1
fi

if [ ! -x .tools/uv/bin/uv ] || [ "$(.tools/uv/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "bootstrap: installing uv $UV_VERSION into .tools/uv"
  "$PYTHON" -m venv .tools/uv
  .tools/uv/bin/pip install -q "uv==$UV_VERSION"
fi

stamp=.venv/.songcorpus-lock-sha256
want=$(sha256sum uv.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if [ -d .venv ]; then
    echo "bootstrap: updating .venv from uv.lock"
  else
    echo "bootstrap: creating .venv from uv.lock (first time: a few GB, mostly torch)"
  fi
  UV_PYTHON_DOWNLOADS=never .tools/uv/bin/uv sync --frozen --python "$PYTHON"
  echo "$want" > "$stamp"
fi
