"""Shared test setup: offscreen rendering through Mesa's EGL, never a display."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
