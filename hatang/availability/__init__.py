"""Availability: planned-maintenance windows and the monthly availability report (docs/operations.md).

Import from the submodules; this file imports nothing.
"""
