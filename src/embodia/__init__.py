"""embodia: embodied vision-language-action models (GEM, WALL-OSS) and their data engine."""

__version__ = "0.1.0"
