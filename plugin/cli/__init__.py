"""The ``brgan`` command line (typer). Sub-commands import heavy modules lazily so that
``brgan --help`` and the listener start fast and never import torch."""
