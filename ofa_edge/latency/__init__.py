"""Latency lookup tables: the units a table is keyed by, the table format with prediction and
calibration, where tables are stored and found, the official YAML import, fidelity metrics, and
profiling a backend into a table."""

from .._lazy import lazy_exports

_EXPORTS = {
    "LatencyTable": ".table",
    "Calibration": ".table",
    "TableError": ".table",
    "load_table": ".table",
    "list_tables": ".store",
    "resolve_table_path": ".store",
    "user_tables_dir": ".store",
    "fidelity": ".fidelity",
    "import_official_tables": ".official",
    "profile_table": ".profiling",
    "calibrate_table": ".profiling",
    "validate_table": ".profiling",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
