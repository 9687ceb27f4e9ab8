"""embodia: embodied vision-language-action models (GEM, WALL-OSS) and their data engine."""

import os as _os

# Simulation renders offscreen. MuJoCo picks its GL backend when it is first imported, so the
# choice must be made before any submodule imports it; a user's own MUJOCO_GL always wins.
_os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"
