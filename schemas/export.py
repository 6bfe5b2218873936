"""JSON Schema files for every registered payload model and the envelope, for non-Python readers.

``python -m schemas.export`` regenerates ``schemas/json/``; a test fails when it is out of date.
"""

import json
import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from schemas.envelope import Envelope
from schemas.inputs.resident_diff import DiffRow
from schemas.registry import REGISTRY

DEFAULT_TARGET = Path(__file__).parent / "json"

# Only files this exporter could have written are removed, so a mistaken target loses nothing else.
_GENERATED_NAME = re.compile(r"envelope\.json|input\.[a-z0-9_-]+\.json|[a-z0-9_.]+\.v[0-9]+\.json")

# The input formats edges accept, next to the events they become.
_INPUTS: dict[str, TypeAdapter[Any]] = {"resident-diff-row": TypeAdapter(DiffRow)}


def _schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def export_json_schemas(target: Path) -> list[Path]:
    """Write ``<type>.v<version>.json`` per registered model plus ``envelope.json`` into ``target``,
    removing generated files of models that no longer exist. Returns the written paths, sorted.
    """
    files = {"envelope.json": _schema_text(Envelope.model_json_schema())}
    for name, adapter in _INPUTS.items():
        files[f"input.{name}.json"] = _schema_text(adapter.json_schema())
    for event_type in REGISTRY.types():
        for version in REGISTRY.versions(event_type):
            schema = REGISTRY.model(event_type, version).model_json_schema()
            files[f"{event_type}.v{version}.json"] = _schema_text(schema)
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.iterdir():
        if stale.name not in files and _GENERATED_NAME.fullmatch(stale.name):
            stale.unlink()
    written = []
    for name, text in sorted(files.items()):
        path = target / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    for path in export_json_schemas(DEFAULT_TARGET):
        print(path)


if __name__ == "__main__":
    main()
