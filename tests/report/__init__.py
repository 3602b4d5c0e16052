"""Tests for pipeline.report (a package so its module names cannot clash with other test folders)."""
