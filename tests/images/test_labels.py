"""The OCI labels each image carries, from the facts of its build."""

from __future__ import annotations

from microforum.images.labels import PREFIX, labelled_stage, oci_labels


def test_every_fact_becomes_its_label() -> None:
    labels = oci_labels(
        version="0.1.0",
        created=0.0,
        revision="0123abc",
        source="https://example.org/microforum.git",
        base_name="localhost/python-base:bookworm",
        base_digest="localhost/python-base@sha256:ab12",
    )
    assert labels == {
        PREFIX + "version": "0.1.0",
        PREFIX + "created": "1970-01-01T00:00:00Z",
        PREFIX + "revision": "0123abc",
        PREFIX + "source": "https://example.org/microforum.git",
        PREFIX + "base.name": "localhost/python-base:bookworm",
        PREFIX + "base.digest": "sha256:ab12",
    }


def test_unknown_facts_give_no_label() -> None:
    labels = oci_labels(
        version="0.1.0",
        created=0.0,
        revision=None,
        source=None,
        base_name="python:3.12-slim",
        base_digest=None,
    )
    assert set(labels) == {PREFIX + "version", PREFIX + "created", PREFIX + "base.name"}


def test_a_base_given_by_digest_is_named_without_it() -> None:
    labels = oci_labels(
        version="1",
        created=0.0,
        revision=None,
        source=None,
        base_name="python:3.12-slim@sha256:ff",
        base_digest="python:3.12-slim@sha256:ff",
    )
    assert labels[PREFIX + "base.name"] == "python:3.12-slim"
    assert labels[PREFIX + "base.digest"] == "sha256:ff"


def test_the_labelled_stage_holds_every_label_literally() -> None:
    text = labelled_stage("users", {PREFIX + "revision": "abc", PREFIX + "source": 'x"$HOME\\y\nz'})
    assert text.splitlines() == [
        "",
        "FROM users AS users-labelled",
        f'LABEL "{PREFIX}revision"="abc" \\',
        f'      "{PREFIX}source"="x\\"\\$HOME\\\\y z"',
    ]
    assert labelled_stage("users", {}) == "\nFROM users AS users-labelled\n"
