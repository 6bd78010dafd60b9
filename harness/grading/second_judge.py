"""A second judge from another model family: an Ollama or OpenAI-compatible server grading with the same rubric.

It gets the same prompts as Claude (the rubric as the system message, the blind per-answer message as the user
message) and is held to the same output schema, sent as the server's structured-output constraint: Ollama's
``format`` or OpenAI's ``response_format`` ``json_schema``. Parsing, the one retry on bad output and scoring are
:class:`~harness.grading.grader.Judge`'s, so the two judges' grades differ only by the model behind them.

Money is explicit:
- a judge with ``price:`` is a paid API: each call reserves its projected cost (the prompt's estimated tokens at the
  input rate, ``max_tokens`` at the output rate) on the grading budget, and settles at its reported tokens;
- any other judge is self-hosted: its calls cost its host's cost model for the time they took (the fleet host's
  ``cost:``, or the judge's own), and nothing when none is given. That spend is counted on a budget of the judge's own,
  outside the run's cloud budget, since no cloud dollar pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from harness.config.fleet import Fleet, Host, HostCost
from harness.config.grading import GradingConfig, JudgeConfig, JudgePrice
from harness.errors import InputError
from harness.grading.grader import Judge, StructuredClient
from harness.money.budget import Budget
from harness.money.costs import local_call_cost
from harness.money.tokens import estimate_tokens
from harness.providers.base import provider_for
from harness.providers.structured import StructuredReply, StructuredRequest

_MILLION = 1_000_000


@dataclass
class HttpJudge(Judge):
    """A judge on an Ollama or OpenAI-compatible server (``harness.providers``' structured call)."""

    host_cost: HostCost | None = None
    list_price: JudgePrice | None = None
    concurrency: int = 4
    kind: str = "ollama"  # the wire protocol: ollama | openai
    where: str = ""  # how the manifest names where it runs: a fleet host, or the server's kind

    @property
    def paid(self) -> bool:
        return self.list_price is not None

    def projected_usd(
        self, request: StructuredRequest, *, batch: bool, calls: int = 1, unseen_user_tokens: int = 0
    ) -> float:
        prompt = estimate_tokens(request.system) + estimate_tokens(request.user) + unseen_user_tokens
        return calls * self.projected_tokens_usd(prompt, request.max_tokens)

    def projected_tokens_usd(self, prompt_tokens: int, max_tokens: int) -> float:
        """A paid call's upper estimate: the prompt at the input rate, ``max_tokens`` out; 0 when self-hosted (priced
        after the call, from the time it took)."""
        if self.list_price is None:
            return 0.0
        return (prompt_tokens * self.list_price.input + max_tokens * self.list_price.output) / _MILLION

    def price(self, reply: StructuredReply, *, batch: bool) -> float | None:
        if self.list_price is not None:
            usage = reply.usage
            if usage.input_tokens is None or usage.output_tokens is None:
                return None  # the server did not report tokens: unpriced, not free
            price = self.list_price
            return (usage.input_tokens * price.input + usage.output_tokens * price.output) / _MILLION
        if self.host_cost is None:
            return 0.0
        return local_call_cost(self.host_cost, reply.latency_s).total_usd

    async def aclose(self) -> None:
        close = getattr(self.client, "aclose", None)
        if close is not None:
            await close()


def judge_host(judge: JudgeConfig, fleet: Fleet | None, concurrency: int) -> Host:
    """The server a second judge is asked on: its fleet host (always on the chat endpoint, which takes a schema),
    or one made from its url, kind and model."""
    if judge.host is not None:
        if fleet is None:
            raise InputError(f"judge {judge.name}: host {judge.host!r} needs the run's fleet file",
                             hint="pass --fleet, or give the judge url, kind and model")
        try:
            host = fleet.host(judge.host)
        except KeyError:
            raise InputError(f"judge {judge.name}: no host {judge.host!r} in the fleet file",
                             hint=f"hosts: {', '.join(h.name for h in fleet.hosts)}") from None
        return host.model_copy(update={"endpoint": "chat", "stream": False})
    # the config checked that a judge without host: has all three, and that its kind is not anthropic
    assert judge.url is not None and judge.kind in ("ollama", "openai") and judge.model is not None
    return Host(name=judge.name, url=judge.url, kind="openai" if judge.kind == "openai" else "ollama",
                model=judge.model, token_env=judge.token_env, max_concurrency=concurrency,
                cost=judge.cost or HostCost())


def build_second_judge(judge: JudgeConfig, config: GradingConfig, fleet: Fleet | None,
                       grading_budget: Budget | None) -> HttpJudge:
    """A second judge ready to grade. A paid one spends from the grading budget; a self-hosted one from its own."""
    host = judge_host(judge, fleet, judge.concurrency or config.concurrency)
    # the local-host providers (HttpProvider) all make structured calls; the registry types them by generation only
    client = cast("StructuredClient", provider_for(host, timeout_s=judge.timeout_s))
    if judge.price is not None:
        budget = Budget(None, name=f"judge {judge.name}", parent=grading_budget)
    else:
        budget = Budget(None, name=f"judge {judge.name} (self-hosted)")
    where = f"fleet host {judge.host}" if judge.host is not None else f"{host.kind} server"
    cost = None if judge.price is not None else (host.cost if judge.host is not None else judge.cost)
    return HttpJudge(client=client, config=config, budget=budget, name=judge.name, host_cost=cost,
                     list_price=judge.price, concurrency=judge.concurrency or config.concurrency, kind=host.kind,
                     where=where)
