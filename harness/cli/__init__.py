"""The ``harness`` command (typer): the only room that prints or exits; a HarnessError becomes a message and an exit
code (2 bad input, 1 a failed gate), never a traceback."""
