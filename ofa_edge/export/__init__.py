"""Export: extract a subnet, recalibrate (and optionally fine-tune) it, convert and quantise it for
a runtime, verify it against PyTorch, time it, and write model cards.

The stages, one module each: :mod:`.config` (what is asked), :mod:`.specialized` (resolve the arch,
table, budget and supernet), :mod:`.extract`, :mod:`.formats` (convert and run per format),
:mod:`.verify`, :mod:`.timing`, :mod:`.card` and :mod:`.staging` (files into place);
:mod:`.pipeline` chains them, :mod:`.deploy` and :mod:`.closed_loop` build on it."""

from .._lazy import lazy_exports

_EXPORTS = {
    "export_subnet": ".pipeline",
    "ExportConfig": ".config",
    "ExportResult": ".pipeline",
    "ExportedFile": ".pipeline",
    "ExportVerificationError": ".verify",
    "resolve_export": ".specialized",
    "export_with_refit": ".closed_loop",
    "remove_stale_temps": ".staging",
    "FORMATS": ".formats",
    "extract_subnet": ".extract",
    "finetune_distill": ".extract",
    "add_calibration_point": ".refit",
    "last_specialized": ".specialized",
    "sha256_file": ".card",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
