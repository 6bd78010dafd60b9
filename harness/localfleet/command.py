"""The command line and environment of one embedded llama.cpp server (``python -m llama_cpp.server``)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from harness.errors import LocalFleetError
from harness.localfleet.model import MODEL_ALIAS

# The module every server runs; its presence on a command line is part of a server's identity.
SERVER_MODULE = "llama_cpp.server"

# llama_cpp.server reads every setting from an environment variable of the same name (pydantic-settings), and
# uvicorn.run() takes HOST and PORT from the environment *over* the command line. Strip them from the child's
# environment so a stray PORT or MODEL in the user's shell cannot move or change a server.
_SERVER_SETTING_NAMES = frozenset({
    "api_key", "cache", "cache_size", "cache_type", "chat_format", "chat_template_kwargs", "clip_model_path",
    "config_file", "disable_ping_events", "draft_model", "draft_model_num_pred_tokens", "embedding", "flash_attn",
    "hf_model_repo_id", "hf_pretrained_model_name_or_path", "hf_tokenizer_config_path", "host", "interrupt_requests",
    "kv_overrides", "last_n_tokens_size", "logits_all", "lora_base", "lora_path", "main_gpu", "model", "model_alias",
    "mul_mat_q", "n_batch", "n_ctx", "n_gpu_layers", "n_threads", "n_threads_batch", "n_ubatch", "numa",
    "offload_kqv", "port", "root_path", "rope_freq_base", "rope_freq_scale", "rope_scaling_type", "rpc_servers",
    "seed", "split_mode", "ssl_certfile", "ssl_keyfile", "tensor_split", "type_k", "type_v", "use_mlock", "use_mmap",
    "verbose", "vocab_only", "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow", "yarn_ext_factor",
    "yarn_orig_ctx",
})


def check_server_installed() -> None:
    """Raise :class:`LocalFleetError` naming the first module the server needs that is not installed."""
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            raise LocalFleetError(f"cannot start llama.cpp servers: Python module {module!r} is missing",
                                  hint="install the local extra: pip install -e '.[local]'")


def server_command(model_path: Path, port: int, *, threads: int, ctx: int, batch: int,
                   alias: str = MODEL_ALIAS) -> list[str]:
    """The command line of one server.

    Choices that are not the server's defaults, and why:

    * ``--n_threads_batch`` = ``--n_threads``: the default uses every core for prompt processing, so two servers on a
      2-core box would fight over both cores.
    * ``--logits_all false``: the default copies the logits of every prompt token (262k-entry vocabulary, 1 MB per
      token) into a NumPy array; we never ask for logprobs. Measured on a 1,720-token prompt: peak RSS 3.2 GB and
      22 s with the default, 0.46 GB and 7 s without.
    * ``--use_mlock false``: mlock of 250 MB fails under the default RLIMIT_MEMLOCK of containers and CI runners.
    * ``--interrupt_requests false``: otherwise a ``GET /v1/models`` status probe cuts a streamed answer short.
    * ``--verbose true`` (the default) keeps llama.cpp's per-request timings in the log; ``bench/`` parses them.
    * ``-X faulthandler``: a fatal signal (SIGILL from a build for another CPU, SIGSEGV) is written to the log as
      ``Fatal Python error: <name>``, so a process that is not the server's parent can still tell how it died.
    """
    return [
        sys.executable, "-X", "faulthandler", "-m", SERVER_MODULE,
        "--model", str(model_path),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--n_ctx", str(ctx),
        "--n_batch", str(batch),
        "--n_ubatch", str(batch),
        "--logits_all", "false",
        "--use_mlock", "false",
        "--interrupt_requests", "false",
        "--verbose", "true",
    ]


def child_env() -> dict[str, str]:
    """Our environment without the variables that would override a server setting."""
    return {k: v for k, v in os.environ.items() if k.lower() not in _SERVER_SETTING_NAMES}


__all__ = ["SERVER_MODULE", "check_server_installed", "child_env", "server_command"]
