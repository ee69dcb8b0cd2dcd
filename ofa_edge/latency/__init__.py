"""Latency lookup tables: the units a table is keyed by, the table format, prediction and
calibration, the official YAML import, and profiling a backend into a table."""

from .table import Calibration, LatencyTable, TableError, load_table

__all__ = ["Calibration", "LatencyTable", "TableError", "load_table"]
