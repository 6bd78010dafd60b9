"""Export the JSON Schema of every run-store record, for tools that read runs without this package.

``python -m harness.store.schemas`` rewrites ``harness/store/schemas_json/*.schema.json``; a test fails when they
are stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.store.records import SCHEMA_MODELS, SCHEMA_VERSION

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas_json"


def schema_texts() -> dict[str, str]:
    """File name -> JSON Schema text, for each record in :data:`~harness.store.records.SCHEMA_MODELS`."""
    out = {}
    for name, model in SCHEMA_MODELS.items():
        schema = model.model_json_schema()
        schema["$id"] = f"rag-fleet-harness/{name}/v{SCHEMA_VERSION}"
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_texts().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    write_schemas()
