from pathlib import Path

from schemas.export import DEFAULT_TARGET, export_json_schemas
from schemas.registry import REGISTRY


def test_committed_json_schemas_are_in_sync(tmp_path: Path) -> None:
    export_json_schemas(tmp_path)
    expected = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    committed = {path.name: path.read_bytes() for path in DEFAULT_TARGET.glob("*.json")}
    stale = sorted(
        name
        for name in expected.keys() | committed.keys()
        if expected.get(name) != committed.get(name)
    )
    assert not stale, (
        f"schemas/json/ is out of date ({', '.join(stale)}): run `python -m schemas.export`"
    )


def test_one_file_per_registered_model_and_the_envelope(tmp_path: Path) -> None:
    written = export_json_schemas(tmp_path)
    expected = {"envelope.json", "input.resident-diff-row.json"} | {
        f"{event_type}.v{version}.json"
        for event_type in REGISTRY.types()
        for version in REGISTRY.versions(event_type)
    }
    assert sorted(path.name for path in written) == sorted(expected)
    assert all(path.read_text(encoding="utf-8").endswith("}\n") for path in written)


def test_export_is_deterministic_and_removes_only_its_stale_files(tmp_path: Path) -> None:
    first = {path.name: path.read_bytes() for path in export_json_schemas(tmp_path)}
    (tmp_path / "victim.teleported.v1.json").write_text("{}\n")
    (tmp_path / "README.md").write_text("kept\n")
    (tmp_path / "notes.json").write_text("{}\n")
    second = {path.name: path.read_bytes() for path in export_json_schemas(tmp_path)}
    assert first == second
    assert not (tmp_path / "victim.teleported.v1.json").exists()
    assert (tmp_path / "README.md").exists()
    assert (tmp_path / "notes.json").exists()
