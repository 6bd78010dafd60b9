"""The response cache: real runs through the CLI against loopback fakes; the SQLite store under several processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import sqlite3
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from _runs import fleet_file, invoke, main_exit, records
from _suites import generation, write_suite

from harness.config.fleet import load_fleet
from harness.fakes import FakeOllama, FakeOpenAI, Reply
from harness.fakes.script import RecordedRequest
from harness.providers.types import Generation, GenerationRequest, Usage
from harness.run.cache import CachedTier, ResponseCache, ServedBy, cache_key
from harness.run.cache_identity import local_identity


def answer_for(request: RecordedRequest) -> Reply:
    """A different answer for each prompt, so a replay can be told from a fresh answer."""
    prompt = json.dumps(request.body, sort_keys=True)
    return Reply.ok(f"At least 36 inches ({hashlib.sha256(prompt.encode()).hexdigest()[:10]})")


def answers(run_dir: Path) -> dict[tuple[str, str], dict]:
    return {(r["case_id"], r["variant"]): r["generations"]["local"] for r in records(run_dir) if r["generations"]}


def test_a_cached_rerun_makes_no_model_call_and_reproduces_the_answers(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml")
    runs = workdir / "reports" / "mini"
    with FakeOpenAI(script=answer_for) as server:
        fleet = fleet_file(workdir / "fleet.yaml", server.url)
        invoke("run", str(suite), "--run-id", "first", "--fleet", str(fleet), "--quiet")
        made = server.generations
        first = answers(runs / "first")
        assert len(first) == 6  # three generation cases × two generating variants
        # Where dense and hybrid fed the same context, the second answer already came from the cache.
        assert made == sum(not a["cached"] for a in first.values()) >= 4
        invoke("run", str(suite), "--run-id", "again", "--fleet", str(fleet), "--quiet")
        assert server.generations == made  # not one call
        invoke("run", str(suite), "--run-id", "fresh", "--fleet", str(fleet), "--quiet", "--no-cache")
        assert server.generations == made + 6
    again, fresh = answers(runs / "again"), answers(runs / "fresh")
    assert first.keys() == again.keys() == fresh.keys()
    for key, answer in first.items():
        assert fresh[key]["cached"] is False
        assert again[key]["cached"] is True
        assert again[key]["text"] == answer["text"] == fresh[key]["text"]
        assert again[key]["answer_metrics"] == answer["answer_metrics"]
    assert (workdir / ".harness" / "cache" / "responses.sqlite3").is_file()


def test_an_error_is_never_replayed(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = write_suite(workdir / "mini.yaml")
    runs = workdir / "reports" / "mini"
    with FakeOpenAI(script=Reply.error(500)) as broken:
        fleet = str(fleet_file(workdir / "b.yaml", broken.url))
        assert main_exit(monkeypatch, "run", str(suite), "--run-id", "broken", "--fleet", fleet, "--quiet") == 3
    assert all(a["status"] == "failed" for a in answers(runs / "broken").values())
    # Same kind and model at another address: the same cache key, so only the cache could hide the call.
    with FakeOpenAI(script=answer_for) as healthy:
        fleet = fleet_file(workdir / "h.yaml", healthy.url)
        invoke("run", str(suite), "--run-id", "healthy", "--fleet", str(fleet), "--quiet")
    healthy_answers = answers(runs / "healthy")
    assert all(a["status"] == "ok" for a in healthy_answers.values())
    # every distinct prompt was asked again: the failures left nothing in the cache to replay
    assert healthy.generations == sum(not a["cached"] for a in healthy_answers.values()) >= 4


def test_changing_only_retrieval_reuses_the_answers_whose_context_did_not_change(workdir: Path) -> None:
    suite = write_suite(workdir / "mini.yaml")
    runs = workdir / "reports" / "mini"
    with FakeOpenAI(script=answer_for) as server:
        fleet = fleet_file(workdir / "fleet.yaml", server.url)
        invoke("run", str(suite), "--run-id", "ab1", "--fleet", str(fleet), "--quiet")
        before = server.generations
        # The A/B now feeds the generator from dense and BM25: dense's contexts are unchanged.
        write_suite(suite, generation=generation(variants=["dense", "bm25"]))
        invoke("run", str(suite), "--run-id", "ab2", "--fleet", str(fleet), "--quiet")
        made = server.generations - before
    second = answers(runs / "ab2")
    assert all(a["cached"] for (case, variant), a in second.items() if variant == "dense")
    fresh = [key for key, a in second.items() if not a["cached"]]
    assert made == len(fresh) <= 3  # only BM25 contexts never seen before were asked
    first = answers(runs / "ab1")
    for key, answer in second.items():
        if key in first:
            assert answer["text"] == first[key]["text"]


def _writer(directory: str, worker: int, keys: int) -> int:
    cache = ResponseCache.open(Path(directory))
    for i in range(keys):
        key = f"k{(i * 7 + worker) % keys}"  # workers overlap on the same keys, in different orders
        generation = Generation(text=f"answer {key}", host="h", model="m", tier="local", latency_s=0.1,
                                usage=Usage(3, 4))
        cache.put(key, "local", generation)
        found = cache.get(key)
        assert found is not None and found.text == f"answer {key}" and found.cached
    cache.close()
    return worker


def test_several_processes_write_the_same_cache_safely(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        done = pool.starmap(_writer, [(str(tmp_path), worker, 150) for worker in range(4)])
    assert sorted(done) == [0, 1, 2, 3]
    cache = ResponseCache.open(tmp_path)
    assert len(cache) == 150
    assert all(cache.get(f"k{i}").text == f"answer k{i}" for i in range(150))  # type: ignore[union-attr]


def test_the_key_covers_tier_model_digest_prompt_and_options_but_not_streaming() -> None:
    request = GenerationRequest("Q?", max_tokens=32, temperature=0.0, seed=7)
    served = {"hosts": [{"kind": "ollama", "model": "m", "digest": "d1"}]}
    base = cache_key("local", served, request)
    assert cache_key("local", served, GenerationRequest("Q?", max_tokens=32, temperature=0.0, seed=7,
                                                         stream=True)) == base
    changed = [
        cache_key("cloud", served, request),
        cache_key("local", {"hosts": [{"kind": "ollama", "model": "m", "digest": "d2"}]}, request),
        cache_key("local", {"hosts": [{"kind": "openai", "model": "m", "digest": "d1"}]}, request),
        cache_key("local", served, GenerationRequest("Q!", max_tokens=32, temperature=0.0, seed=7)),
        cache_key("local", served, GenerationRequest("Q?", max_tokens=33, temperature=0.0, seed=7)),
        cache_key("local", served, GenerationRequest("Q?", max_tokens=32, temperature=0.5, seed=7)),
        cache_key("local", served, GenerationRequest("Q?", max_tokens=32, temperature=0.0, seed=8)),
    ]
    assert len({base, *changed}) == len(changed) + 1


def test_model_digests_come_from_ollama_tags_and_gguf_files_are_hashed_once(tmp_path: Path) -> None:
    cache = ResponseCache.open(tmp_path / "cache")
    with FakeOllama(models=("llama3.1:8b",)) as ollama, FakeOpenAI() as llama:
        (tmp_path / "fleet.yaml").write_text(
            f"hosts:\n  - {{name: a, url: '{ollama.url}', kind: ollama, model: 'llama3.1:8b'}}\n"
            f"  - {{name: b, url: '{llama.url}', kind: openai, model: gemma}}\n"
        )
        served = asyncio.run(local_identity(load_fleet(tmp_path / "fleet.yaml"), cache))
    by_kind = {host["kind"]: host for host in served.identity["hosts"]}
    assert by_kind["ollama"]["digest"] == hashlib.sha256(b"llama3.1:8b").hexdigest()  # what the fake's tags say
    assert by_kind["openai"]["digest"] is None and by_kind["openai"]["digest_source"] == "unknown"
    # by host name too, so a stored answer names the digest of the host that made it
    assert served.digest_of("a") == (by_kind["ollama"]["digest"], "ollama /api/tags")
    assert served.digest_of("b") == (None, "unknown") == served.digest_of("no-such-host")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + os.urandom(4096))
    assert cache.file_sha256(gguf) == hashlib.sha256(gguf.read_bytes()).hexdigest()
    stat = gguf.stat()
    gguf.write_bytes(b"GGUF" + os.urandom(4096))  # same size; put the old mtime back: the memo answers
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    remembered = cache.file_sha256(gguf)
    assert remembered != hashlib.sha256(gguf.read_bytes()).hexdigest()
    os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a new mtime: hashed again
    assert cache.file_sha256(gguf) == hashlib.sha256(gguf.read_bytes()).hexdigest()


def test_an_entry_keeps_its_provenance_and_is_never_replaced(tmp_path: Path) -> None:
    cache = ResponseCache.open(tmp_path)
    first = Generation(text="first", host="h", model="m", tier="local", latency_s=0.02, cost_usd=1e-6)
    entry = cache.put("k", "local", first, run_id="monday", model_digest="d1", digest_source="ollama /api/tags")
    assert entry is not None and (entry.key, entry.run_id, entry.model_digest) == ("k", "monday", "d1")
    # a later fresh answer to the same prompt (a monitoring run) leaves the stored one alone
    assert cache.put("k", "local", replace(first, text="second"), run_id="tuesday") is None
    found = cache.get("k")
    assert found is not None and found.cached and found.text == "first" and found.latency_s == 0.02
    assert found.cache_entry == entry


def test_a_cache_written_before_provenance_was_kept_still_replays(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "responses.sqlite3")
    old.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, tier TEXT NOT NULL, created REAL NOT NULL, "
                "generation TEXT NOT NULL)")
    stored = Generation(text="old", host="h", model="m", tier="local", latency_s=0.3)
    old.execute("INSERT INTO responses VALUES (?, ?, ?, ?)",
                ("k", "local", 1_790_000_000.0, json.dumps(asdict(stored))))
    old.commit()
    old.close()
    found = ResponseCache.open(tmp_path).get("k")
    assert found is not None and found.text == "old" and found.cached
    assert found.cache_entry is not None
    assert (found.cache_entry.run_id, found.cache_entry.made_at) == (None, "2026-09-21T14:13:20+00:00")


def test_write_only_asks_every_time_and_stores_what_is_missing(tmp_path: Path) -> None:
    class Counting:
        name = "local"
        calls = 0

        async def answer(self, request: GenerationRequest) -> Generation:
            self.calls += 1
            return Generation(text=f"answer {self.calls}", host="h", model="m", tier="local", latency_s=0.1)

        async def aclose(self) -> None:
            return None

    async def served() -> ServedBy:
        return ServedBy({"hosts": [{"kind": "openai", "model": "m"}]}, {"h": ("d", "sha256 of the GGUF")})

    cache = ResponseCache.open(tmp_path)
    inner = Counting()
    writer = CachedTier(inner, cache, served, read=False, run_id="night-1")
    request = GenerationRequest("Q?")

    async def twice() -> list[Generation]:
        return [await writer.answer(request), await writer.answer(request)]

    made = asyncio.run(twice())
    assert inner.calls == 2 and not any(g.cached for g in made)
    assert made[0].cache_entry is not None and made[0].cache_entry.run_id == "night-1"
    assert made[0].cache_entry.model_digest == "d"
    assert made[1].cache_entry is None  # the key had an answer: not stored, so it is no entry
    reader = CachedTier(inner, cache, served, read=True, run_id="ab")
    replayed = asyncio.run(reader.answer(request))
    assert inner.calls == 2 and replayed.cached and replayed.text == "answer 1"
    assert replayed.cache_entry == made[0].cache_entry
