"""Export: extract a subnet, recalibrate (and optionally fine-tune) it, convert and quantise it for
a runtime, verify it against PyTorch, time it, and write model cards (see :mod:`.pipeline`)."""

from .._lazy import lazy_exports

_EXPORTS = {
    "export_subnet": ".pipeline",
    "ExportResult": ".pipeline",
    "ExportedFile": ".pipeline",
    "ExportVerificationError": ".pipeline",
    "EXPORT_FORMATS": ".pipeline",
    "remove_stale_temps": ".pipeline",
    "FORMATS": ".formats",
    "extract_subnet": ".extract",
    "finetune_distill": ".extract",
    "add_calibration_point": ".refit",
    "last_specialized": ".specialized",
    "sha256_file": ".card",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
