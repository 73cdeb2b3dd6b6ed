"""The YAML config: locations, validation, atomic locked updates."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from s3bp.config import DEFAULTS, ConfigFile, config_path, state_dir, validate
from s3bp.errors import ConfigError


def test_locations_follow_environment():
    assert str(config_path({"S3BP_CONFIG": "/c/s.yml"})) == "/c/s.yml"
    assert str(config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"})) == "/x/s3bp/config.yml"
    assert str(config_path({"HOME": "/h"})) == "/h/.config/s3bp/config.yml"
    assert str(state_dir({"S3BP_STATE_DIR": "/s"})) == "/s"
    assert str(state_dir({"XDG_STATE_HOME": "/x", "HOME": "/h"})) == "/x/s3bp"
    assert str(state_dir({"HOME": "/h"})) == "/h/.local/state/s3bp"


def test_defaults_and_wrong_types():
    assert validate(None, "f")["max_workers"] == 8
    with pytest.raises(ConfigError, match="f: field 'max_workers'"):
        validate({"max_workers": "eight"}, "f")
    with pytest.raises(ConfigError, match="base_dir_to_bucket_map"):
        validate({"base_dir_to_bucket_map": ["a"]}, "f")
    with pytest.raises(ConfigError, match="unknown field 'bukket'"):
        validate({"bukket": "x"}, "f")
    with pytest.raises(ConfigError, match="YAML mapping"):
        validate([1], "f")


def test_update_persists_and_is_private(tmp_path):
    path = tmp_path / "cfg" / "config.yml"
    ConfigFile(path).update(lambda d: d.__setitem__("default_bucket", "abc"))
    assert ConfigFile(path).read()["default_bucket"] == "abc"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700


def test_read_notices_changes_by_others(tmp_path):
    path = tmp_path / "config.yml"
    mine, theirs = ConfigFile(path), ConfigFile(path)
    assert mine.read()["default_bucket"] is None
    theirs.update(lambda d: d.__setitem__("default_bucket", "later"))
    assert mine.read()["default_bucket"] == "later"


def test_invalid_yaml_is_reported_and_never_overwritten(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("default_bucket: [unclosed\n")
    with pytest.raises(ConfigError, match=str(path)):
        ConfigFile(path).read()
    with pytest.raises(ConfigError):
        ConfigFile(path).update(lambda d: d.__setitem__("default_bucket", "x"))
    assert path.read_text() == "default_bucket: [unclosed\n"


def test_a_memo_gives_the_parse_of_the_same_text_without_yaml(tmp_path, monkeypatch):
    path, memo = tmp_path / "config.yml", tmp_path / "state" / "config.json"  # the state directory is made if missing
    path.write_text("default_bucket: first\nmax_age: 2.5\nbase_dir_to_bucket_map:\n  /data: first\n")
    assert ConfigFile(path, memo=memo).read()["max_age"] == 2.5
    assert memo.exists() and os.stat(memo).st_mode & 0o777 == 0o600 and os.stat(memo.parent).st_mode & 0o777 == 0o700

    def no_yaml(text):
        raise AssertionError("parsed again")

    monkeypatch.setattr(yaml, "safe_load", no_yaml)
    again = ConfigFile(path, memo=memo).read()
    assert again["default_bucket"] == "first" and again["max_age"] == 2.5 and again["base_dir_to_bucket_map"] == {"/data": "first"}
    path.write_text("default_bucket: second\n")  # another text: parsed, whatever the memo holds
    with pytest.raises(AssertionError, match="parsed again"):
        ConfigFile(path, memo=memo).read()


def test_a_memo_keeps_only_what_json_gives_back_exactly(tmp_path):
    path, memo = tmp_path / "config.yml", tmp_path / "config.json"
    path.write_text("upload_args:\n  Expires: 2030-01-01 00:00:00\n")  # YAML makes a datetime of it: JSON cannot
    assert str(ConfigFile(path, memo=memo).read()["upload_args"]["Expires"]) == "2030-01-01 00:00:00"
    assert not memo.exists()
    path.write_text("upload_args:\n  Metadata: {1: one}\n")  # a number as a key: JSON would make it a string
    assert ConfigFile(path, memo=memo).read()["upload_args"] == {"Metadata": {1: "one"}}
    assert not memo.exists()
    memo.write_text("{not json")  # damaged: parsed again, and replaced
    path.write_text("max_workers: 3\n")
    assert ConfigFile(path, memo=memo).read()["max_workers"] == 3
    assert ConfigFile(path, memo=memo).read()["max_workers"] == 3 and '"max_workers": 3' in memo.read_text()



@pytest.mark.skipif(os.name != "posix", reason="symlinks and FIFOs")
def test_a_memo_is_read_only_from_a_regular_file_of_its_own(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("default_bucket: real\n")
    forged = tmp_path / "elsewhere.json"
    forged.write_text(json.dumps({"text": path.read_text(), "parsed": {"default_bucket": "forged"}}))
    memo = tmp_path / "config.json"
    memo.symlink_to(forged)  # a symlink planted at the memo's name is never followed
    assert ConfigFile(path, memo=memo).read()["default_bucket"] == "real"
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # a FIFO there would block a reader for ever: it is not read
    assert ConfigFile(path, memo=fifo).read()["default_bucket"] == "real"


def test_a_relative_config_path_names_the_same_file_after_a_chdir(tmp_path, monkeypatch):
    (tmp_path / "cfg.yml").write_text("default_bucket: here\n")
    monkeypatch.chdir(tmp_path)
    cfg = ConfigFile("cfg.yml")
    monkeypatch.chdir(tmp_path.parent)
    assert cfg.read()["default_bucket"] == "here"


def _add_mappings(path: str, worker: int, count: int) -> None:
    cfg = ConfigFile(path)
    for i in range(count):
        cfg.update(lambda d, i=i: d["base_dir_to_bucket_map"].__setitem__(f"/w{worker}/d{i}", f"bucket-{worker}"))


def test_concurrent_processes_lose_no_mapping(tmp_path):
    path = str(tmp_path / "config.yml")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_mappings, args=(path, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(ConfigFile(path).read()["base_dir_to_bucket_map"]) == 60


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from([*DEFAULTS, "bukket"]) | st.text(max_size=8)


@settings(max_examples=200, deadline=None)
@given(doc=st.dictionaries(field_names, yaml_values, max_size=5) | yaml_values)
def test_any_yaml_document_is_read_or_refused_with_config_error(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("fuzz") / "config.yml"
    path.write_text(yaml.safe_dump(doc))
    try:
        data = ConfigFile(path).read()
    except ConfigError as exc:
        assert str(path) in str(exc)
    else:
        assert set(data) == set(DEFAULTS)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_is_read_or_refused_with_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "config.yml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = path.read_bytes()
    try:
        ConfigFile(path).read()
    except ConfigError:
        pass
    assert path.read_bytes() == before  # never rewritten by reading


def test_cache_limits_accept_sizes_and_ages_with_units():
    from s3bp.config import parse_age, parse_size

    assert parse_size("20GB") == 20 * 10**9 and parse_size("500MiB") == 500 * 2**20 and parse_size(1234) == 1234
    assert parse_size("1.5 kb") == 1500 and parse_size("0") == 0
    assert parse_age("30d") == 30 * 86400 and parse_age("12h") == 12 * 3600 and parse_age("90min") == 5400 and parse_age(7) == 7
    data = validate({"cache_max_size": "20GB", "cache_max_age": "30d"}, "f")
    assert data["cache_max_size"] == "20GB" and data["cache_max_age"] == "30d"  # kept as written; parsed where used
    bad_values = [("cache_max_size", v) for v in ("lots", -1, "5 parsecs", True, "9" * 400)]
    for field, bad in bad_values + [("cache_max_age", v) for v in ("soon", [1], float("nan"))]:
        with pytest.raises(ConfigError, match=f"f: field '{field}' must be a"):
            validate({field: bad}, "f")
