"""The ``harness`` command (typer): the only room that prints or exits. A HarnessError becomes a message and its exit
code (2 bad input, 3 a runtime failure; 1 is a failed gate), never a traceback."""
