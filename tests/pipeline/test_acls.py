"""The broker ACLs planned for a Kafka cluster: each edge's process writes its own topic alone."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

from pipeline.acls import grants, principals, unwritten_topics, user_commands
from pipeline.settings import Settings
from pipeline.topics import DEAD_LETTERS
from schemas.rights import EDGE_RIGHTS


def test_every_process_writes_only_its_edges_topics(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, topic_prefix="prod.")
    writes: dict[str, set[str]] = {}
    for grant in grants(settings):
        if "Write" in grant.operations:
            assert grant.resource == "topic"
            assert not grant.prefixed
            writes.setdefault(grant.principal, set()).add(grant.name)
    for principal, kinds in principals().items():
        expected = {f"prod.{EDGE_RIGHTS[kind].topic}" for kind in kinds}
        if "worker" in principal:
            expected.add(f"prod.{DEAD_LETTERS.name}")
        assert writes[principal] == expected, principal
    assert writes["User:bcl-center-east"] == {"prod.issuance.requests"}
    assert writes["User:bcl-worker-issuance-west"] == {
        "prod.issuance.outcomes",
        "prod.dead-letters",
    }
    assert unwritten_topics() == set()


def test_the_commands_name_the_deployments_topics(tmp_path: Path) -> None:
    prefixed = [g.kafka_acls() for g in grants(Settings(home=tmp_path, topic_prefix="prod."))]
    assert (
        "kafka-acls.sh --bootstrap-server $BCL_KAFKA_BOOTSTRAP --add --allow-principal "
        "User:bcl-jpki --operation Write --operation Describe --topic prod.jpki.certificates"
    ) in prefixed
    assert any(c.endswith("--topic prod. --resource-pattern-type prefixed") for c in prefixed)
    bare = [g.kafka_acls() for g in grants(Settings(home=tmp_path))]
    assert any(c.endswith("--topic '*'") for c in bare)
    assert not any("--topic  " in c for c in bare)


def test_bcl_edges_lists_each_edge_with_its_topic_and_rights(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BCL_")}
    listed = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "edges", "list", "--format", "csv"],
        env=env | {"BCL_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = {row["edge"]: row for row in csv.DictReader(io.StringIO(listed.stdout))}
    assert set(rows) == {
        kind if rights.scope is None else f"{kind}:<{rights.scope}>"
        for kind, rights in EDGE_RIGHTS.items()
    }
    assert rows["jpki"]["topic"] == "jpki.certificates"
    assert "certificate.revoked" in rows["jpki"]["may_publish"].split()
    assert rows["center:<origin>"]["bound_to"] == "its own origin"


def test_each_principal_is_made_a_scram_user_of_its_own() -> None:
    made = user_commands()
    assert len(made) == len(principals())
    assert any(c.endswith("--entity-type users --entity-name bcl-center-west") for c in made)
