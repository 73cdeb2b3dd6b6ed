"""Versions under hostile use: tampered pinned copies, racing names, odd arguments, reserved keys, unversioned buckets."""

from __future__ import annotations

import os
import pickle
import stat

import pytest

from s3bp.errors import ConflictError, InvalidArgumentError, InvalidPathError, ObjectNotFoundError, VersioningError

from ..support import body


def save_three(m, path):
    for n in (1, 2, 3):
        m.store.save_object(f"v{n}", path, wait=True)
    return [v.version_id for v in reversed(m.store.versions(path))]


def test_an_edited_or_truncated_pinned_copy_is_fetched_again(two):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    copy = b.store.download_file(pb, version=ids[0])
    os.chmod(copy, 0o644)
    with open(copy, "wb") as f:  # an edit in place, by someone who made it writable first
        f.write(pickle.dumps("evil"))
    b.log.clear()
    assert b.store.load_object(pb, version=ids[0]) == "v1"
    assert b.log.operations == ["GetObject"]  # the version again, by its id (no names lookup)
    assert not os.stat(copy).st_mode & stat.S_IWUSR or os.geteuid() == 0  # read-only again
    os.chmod(copy, 0o644)
    open(copy, "wb").close()  # truncated
    assert b.store.load_object(pb, version=ids[0]) == "v1"
    b.log.clear()
    assert b.store.load_object(pb, version=ids[0]) == "v1"
    assert b.log.operations == []  # an intact copy still costs nothing


def test_a_name_can_never_stand_for_another_version_than_it_says(two):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    with pytest.raises(InvalidArgumentError, match="is the id of one of its versions"):
        a.store.tag(pa, ids[0], ids[2])  # version=ids[0] would then load v3 on one machine, v1 where v1 is cached
    assert b.store.load_object(pb, version=ids[0]) == "v1"
    for name in ("null", "2024-05-01", "2024-05-01T12:00"):  # the id of an unversioned write; what the CLI reads as a time
        with pytest.raises(InvalidArgumentError, match="cannot name a version"):
            a.store.tag(pa, name)
    assert a.store.versions(pa)[0].names == ()
    a.log.clear()
    assert a.store.tag(pa, "prod") == ids[2]
    assert a.log.operations == ["HeadObject", "HeadObject", "GetObject", "PutObject", "HeadObject"]  # is it an id, the latest,
    # the names, write them, is that version still there (a prune may have deleted it meanwhile)


def _once(client, event, action, skip=0):
    """Run ``action`` when ``client`` is about to send ``event`` (on the names document, for object calls) after ``skip`` such."""
    done = []
    seen = []

    def hook(params, **kwargs):
        if not done and (".s3bp/names/" in params.get("Key", "") or "Key" not in params):
            seen.append(1)
            if len(seen) > skip:
                done.append(action())

    client.meta.events.register(f"before-parameter-build.s3.{event}", hook)
    return done


def _raised(call):
    try:
        call()
    except Exception as exc:
        return exc
    return None


def test_a_name_given_while_a_prune_claims_stops_the_prune(two):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    _once(a.store.client(), "PutObject", lambda: b.store.tag(pb, "keep-me", ids[0]))  # b names v1 just before a's claim
    gone = a.store.prune(pa, keep=1, dry_run=False)
    assert [v.version_id for v in gone] == [ids[1]]
    assert b.store.load_object(pb, version="keep-me") == "v1"


def test_a_name_asked_for_during_a_prune_is_refused(two):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    refused = _once(a.store.client(), "DeleteObjects", lambda: _raised(lambda: b.store.tag(pb, "keep-me", ids[0])))
    a.log.clear()
    assert [v.version_id for v in a.store.prune(pa, keep=1, dry_run=False)] == [ids[1], ids[0]]
    assert a.log.operations == ["ListObjectVersions", "GetObject", "PutObject", "DeleteObjects", "GetObject", "PutObject"]
    assert isinstance(refused[0], ConflictError) and "a prune is deleting it" in str(refused[0])
    assert [(v.version_id, v.names) for v in a.store.versions(pa)] == [(ids[2], ())]  # no name of a deleted version
    assert b.store.tag(pb, "prod") == ids[2]  # the claim is gone once the prune is done


def test_a_name_written_after_a_whole_prune_is_taken_back(two):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    _once(b.store.client(), "GetObject", lambda: a.store.prune(pa, keep=1, dry_run=False), skip=1)  # after b checked v1 exists
    with pytest.raises(ObjectNotFoundError, match="deleted .by a prune"):
        b.store.tag(pb, "keep-me", ids[0])
    assert [(v.version_id, v.names) for v in a.store.versions(pa)] == [(ids[2], ())]


def test_nothing_is_saved_over_the_names_of_versions(machine, versioned, raw):
    m = machine("m", folder=".s3bp", bucket=versioned, default_bucket=versioned)  # a mapped directory named .s3bp
    path = m.root / "thing.pkl"
    m.store.save_object("x", path, wait=True)
    m.store.tag(path, "prod")
    names = body(raw, versioned, ".s3bp/names/thing.pkl.json")
    url = f"s3://{versioned}/.s3bp/names/thing.pkl.json"
    for save in (
        lambda: m.store.save_object("clobber", url, wait=True),
        lambda: m.store.save_object("clobber", m.dir / "names" / "thing.pkl.json", wait=True),
        lambda: m.store.upload_file(m.write("names/thing.pkl.json", "clobber"), wait=True),
    ):
        with pytest.raises(InvalidPathError, match=r"Cannot save .* keys under \.s3bp/ hold s3bp's names of versions") as info:
            save()
        assert versioned in str(info.value)
    m.store.flush()
    assert body(raw, versioned, ".s3bp/names/thing.pkl.json") == names and m.store.pending_uploads() == []
    assert m.store.load_object(path, version="prod") == "x"


def test_a_delete_marker_is_named_as_such(two, raw, versioned):
    a, b = two
    pa, pb = a.root / "data.pkl", b.root / "data.pkl"
    ids = save_three(a, pa)
    raw.delete_object(Bucket=versioned, Key="data.pkl")
    marker = a.store.versions(pa)[0]
    assert marker.is_delete_marker
    for call in (
        lambda: a.store.restore(pa, marker.version_id, conflict="overwrite"),
        lambda: b.store.load_object(pb, version=marker.version_id),
    ):
        with pytest.raises(ObjectNotFoundError, match="is a delete marker") as info:
            call()
        assert f"s3://{versioned}/data.pkl" in str(info.value)
    with pytest.raises(ObjectNotFoundError, match=f"has no version '{ids[0]}x'"):
        b.store.load_object(pb, version=ids[0] + "x")
    assert a.store.restore(pa, ids[0], conflict="overwrite") == str(pa) and b.store.load_object(pb) == "v1"


def test_prune_and_untag_arguments_and_an_unversioned_bucket(machine, bucket, versioned):
    m = machine("solo", default_bucket=bucket)
    path = m.root / "data.pkl"
    m.store.save_object("v1", path, wait=True)
    with pytest.raises(VersioningError) as info:
        m.store.untag(path, "prod")
    assert repr(bucket) in str(info.value) and f"s3bp versioning {bucket} --enable" in str(info.value)
    for bad in (30, 1.5, "30d"):
        with pytest.raises(InvalidArgumentError, match="older_than must be a datetime.timedelta"):
            m.store.prune(path, older_than=bad, bucket_name=versioned)
