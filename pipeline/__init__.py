"""srloss: a research pipeline for comparing super-resolution training losses."""

__version__ = "0.1.0"
