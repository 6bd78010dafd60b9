"""Fake model servers on loopback, speaking the real wire protocols (Ollama, llama.cpp/OpenAI, Anthropic).

They exist only for services that cannot run here; the official ``ollama`` and ``anthropic`` clients parse what they
send (tests/test_fakes_fidelity.py). Usage::

    with FakeOllama(script=Reply.ok("text", latency=0.05)) as fake:
        host = Host(name="a", url=fake.url, kind="ollama", model="llama3.2")
        ...
        assert fake.disconnects == 0
"""

from __future__ import annotations

from harness.fakes.anthropic import FakeAnthropic
from harness.fakes.ollama import FakeOllama
from harness.fakes.openai import FakeOpenAI
from harness.fakes.queueing import QueueingOllama
from harness.fakes.script import RecordedRequest, Reply, Script, lognormal
from harness.fakes.server import FakeServer

__all__ = [
    "FakeAnthropic",
    "FakeOllama",
    "FakeOpenAI",
    "FakeServer",
    "QueueingOllama",
    "RecordedRequest",
    "Reply",
    "Script",
    "lognormal",
]
