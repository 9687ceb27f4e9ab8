"""Shared test setup: offscreen rendering through Mesa's EGL, never a display."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config):
    """Frame caches of the tests go to a temporary folder, never the user's ~/.cache."""
    import tempfile

    if "EMBODIA_CACHE" not in os.environ:
        os.environ["EMBODIA_CACHE"] = tempfile.mkdtemp(prefix="embodia-test-cache-")
