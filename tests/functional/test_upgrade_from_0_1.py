"""Upgrading from s3bp 0.1.x: its ``s3bp_cfg.yml`` (kept in its package directory) is imported once, and never touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

import s3bp
from s3bp.config import legacy_config_paths


def write_0_1_config(path: Path, cfg: dict) -> Path:
    """Write a config as s3bp 0.1.8 wrote it: ``yaml.dump(cfg, default_flow_style=False)`` into ``s3bp/s3bp_cfg.yml``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as outfile:
        outfile.write(yaml.dump(cfg, default_flow_style=False))
    return path


def run(*args, **env):
    return subprocess.run([sys.executable, "-m", "s3bp", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


def test_first_use_imports_a_0_1_config_says_so_once_and_leaves_it(tmp_path, monkeypatch):
    labels = tmp_path / "Desktop" / "labels"
    old = write_0_1_config(
        tmp_path / "site-packages" / "s3bp" / "s3bp_cfg.yml",
        {"base_dir_to_bucket_map": {str(labels): "my-labels-s3-bucket"}, "default_bucket": "user-data-bucket",
         "max_workers": 5, "default_base_dir": str(tmp_path)},
    )  # fmt: skip
    before = (old.read_bytes(), old.stat().st_mtime_ns)
    monkeypatch.setenv("S3BP_LEGACY_CONFIG", str(old))

    res = run("where", str(labels / "user_generated" / "skunks.csv"))
    assert res.returncode == 0, res.stderr
    assert "s3://my-labels-s3-bucket/labels/user_generated/skunks.csv" in res.stdout
    assert res.stderr.count("\n") == 1 and "imported the s3bp 0.1.x config" in res.stderr and str(old) in res.stderr
    assert yaml.safe_load(open(os.environ["S3BP_CONFIG"])) == {
        "base_dir_to_bucket_map": {str(labels): "my-labels-s3-bucket"}, "default_bucket": "user-data-bucket", "max_workers": 5,
    }  # fmt: skip
    res = run("where", str(tmp_path / "elsewhere.pkl"))
    assert res.stderr == "" and "s3://user-data-bucket/elsewhere.pkl" in res.stdout  # once only
    assert (old.read_bytes(), old.stat().st_mtime_ns) == before


def test_0_1_code_relying_on_its_default_bucket_works_after_the_upgrade(tmp_path, monkeypatch, endpoint, bucket, raw, capsys):
    old = write_0_1_config(tmp_path / "old" / "s3bp_cfg.yml", {"base_dir_to_bucket_map": {}, "default_bucket": bucket})
    monkeypatch.setenv("S3BP_LEGACY_CONFIG", str(old))
    s3bp.save_object({"Dan": 8382}, tmp_path / "name_to_id_map", wait=True)  # 0.1.x code: no bucket given
    assert raw.head_object(Bucket=bucket, Key="name_to_id_map")
    assert "imported the s3bp 0.1.x config" in capsys.readouterr().err


def test_a_config_of_its_own_is_never_overwritten_by_a_0_1_one(tmp_path, monkeypatch):
    s3bp.set_default_bucket("mine")
    s3bp.set_default_store(None)
    old = write_0_1_config(tmp_path / "s3bp_cfg.yml", {"base_dir_to_bucket_map": {}, "default_bucket": "theirs"})
    monkeypatch.setenv("S3BP_LEGACY_CONFIG", str(old))
    res = run("default-bucket")
    assert res.stdout.strip() == "mine" and res.stderr == ""


def test_config_import_0_1_adds_what_is_missing(tmp_path):
    s3bp.set_default_bucket("mine")
    s3bp.map_base_directory_to_bucket(tmp_path / "a", "bucket-a")
    old = write_0_1_config(
        tmp_path / "s3bp_cfg.yml",
        {"base_dir_to_bucket_map": {str(tmp_path / "a"): "old-a", str(tmp_path / "b"): "old-b"}, "default_bucket": "theirs"},
    )
    res = run("config", "import-0.1", str(old))
    assert res.returncode == 0 and res.stdout == f"imported mapping {tmp_path / 'b'} -> old-b\n", res.stderr
    data = yaml.safe_load(open(os.environ["S3BP_CONFIG"]))
    assert data["default_bucket"] == "mine"
    assert data["base_dir_to_bucket_map"] == {str(tmp_path / "a"): "bucket-a", str(tmp_path / "b"): "old-b"}
    assert "nothing to import" in run("config", "import-0.1", str(old)).stdout
    res = run("config", "import-0.1", str(tmp_path / "missing.yml"))
    assert res.returncode == 1 and "missing.yml" in res.stderr


def test_a_broken_0_1_config_is_reported_in_one_line_and_skipped(tmp_path, monkeypatch):
    old = tmp_path / "s3bp_cfg.yml"
    old.write_text("base_dir_to_bucket_map: [unclosed\n")
    monkeypatch.setenv("S3BP_LEGACY_CONFIG", str(old))
    res = run("default-bucket")
    assert res.returncode == 0 and res.stdout.strip() == "(no default bucket)"
    assert res.stderr.count("\n") == 1 and "could not import" in res.stderr


def test_where_0_1_kept_its_config_is_searched_by_default():
    found = legacy_config_paths({})
    assert Path(s3bp.__file__).resolve().parent / "s3bp_cfg.yml" in found
    assert any("-packages" in str(p) for p in found)
    assert legacy_config_paths({"S3BP_LEGACY_CONFIG": ""}) == []
