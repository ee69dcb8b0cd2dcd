"""Files into place all at once: every output of an export is written under a temp name in the
output folder and renamed to its real name only when the whole export succeeded, so an export that
fails or is killed leaves no file under an output name (and an earlier export of the same name
stays intact until the new one is complete)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import TracebackType

from ..convert.common import temp_name
from .formats import FormatSpec, files_of

_TEMP = re.compile(r"^\..+\.(?:partial|pre|qdq|fp32)-(\d+)-[0-9a-f]{8}")


class Staging:
    """Temp names for every output of one export; used as a context manager, it renames them all
    when the block succeeds and deletes them when it raises."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.pairs: list[tuple[Path, Path]] = []

    def __enter__(self) -> Staging:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.out_dir)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()

    def temp(self, final: Path) -> Path:
        """A temp name for ``final``, renamed to it at commit."""
        tmp = temp_name(final)
        self.pairs.append((tmp, final))
        return tmp

    def model(self, spec: FormatSpec, final: Path) -> Path:
        """A temp name for a model file and each of its companions (an OpenVINO .bin beside its .xml)."""
        tmp = temp_name(final)
        self.pairs += zip(files_of(spec, tmp), files_of(spec, final))
        return tmp

    def commit(self) -> None:
        for tmp, final in self.pairs:
            os.replace(tmp, final)
        self.pairs = []

    def abort(self) -> None:
        for tmp, _ in self.pairs:
            tmp.unlink(missing_ok=True)
        self.pairs = []


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files that killed exports left in ``folder`` (their process is gone)."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMP.match(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
