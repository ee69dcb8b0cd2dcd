"""The ``ofa-edge`` command line: a thin Typer layer over the library, one module per command group.

Every command takes ``--json`` and then prints exactly one JSON object to stdout; otherwise its
listings (tables) go to stdout, logs and progress to stderr. A user error prints one
``error: ...`` line to stderr and exits with 2.
Commands are listed in ``--help`` in pipeline order: get weights, explore, train, measure latency, specialise, export.
"""

from __future__ import annotations

import sys

from typer.exceptions import Abort, Exit, TyperException

from ..errors import OFAEdgeError
from .common import make_typer
from .deploy import register_deploy_command
from .export import register_export_command
from .latency import register_latency_commands
from .search import predictor_app
from .space import arch_app, space_app
from .specialize import register_specialize_command
from .train import evaluate, train
from .weights import weights_app

app = make_typer("Once-for-All supernets for edge devices: explore the space, train once, specialise per device.")
app.add_typer(weights_app, name="weights")
app.add_typer(space_app, name="space")
app.add_typer(arch_app, name="arch")
app.command("train")(train)
app.command("eval")(evaluate)
register_latency_commands(app)
app.add_typer(predictor_app, name="predictor")
register_specialize_command(app)
register_export_command(app)
register_deploy_command(app)


# ----------------------------------------------------------------------- main
def _fail(message: str, code: int = 2) -> int:
    # Plain write, not rich: rich would wrap a long message over several lines.
    sys.stderr.write("error: " + " ".join(message.split()) + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line on stderr and exit code 2."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="ofa-edge")
    except OFAEdgeError as exc:
        return _fail(str(exc), exc.exit_code)
    except TyperException as exc:  # usage errors: unknown option, missing argument, bad value
        return _fail(f"{exc.format_message()} (see --help)")
    except Exit as exc:
        return exc.exit_code
    except Abort:
        return _fail("aborted", code=130)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
