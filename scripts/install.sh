#!/usr/bin/env bash
# Install embodia into ./.venv with everything it needs, from a clean clone.
#
# torch goes in first and pinned (2.13.0): on a CPU machine pip then takes the local CPU wheel and
# the package's own `torch>=2.6` range installs nothing more. Set EMBODIA_TORCH=skip to keep a torch
# you installed yourself (e.g. your own CUDA build) in an existing environment.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${EMBODIA_VENV:-.venv}
TORCH_SPEC=${EMBODIA_TORCH:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

if [ "$TORCH_SPEC" != "skip" ]; then
  "${PIP[@]}" "$TORCH_SPEC"
fi
"${PIP[@]}" -e ".[dev]"

# Offscreen rendering needs an EGL (Mesa) or OSMesa library. Install Mesa's when missing and we can.
if ! MUJOCO_GL=egl "$VENV/bin/python" -c "import mujoco; mujoco.GLContext(8, 8).free()" 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Mesa's EGL for offscreen rendering (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null
  else
    echo "warning: MuJoCo cannot open an EGL context; install Mesa's libegl1 + libgl1-mesa-dri" \
         "(or libosmesa6 and set MUJOCO_GL=osmesa) for offscreen rendering" >&2
  fi
fi
echo "embodia installed in $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
