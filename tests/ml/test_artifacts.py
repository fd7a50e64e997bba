"""A saved version's model.json names its format; a format this code does not know is refused."""

from __future__ import annotations

import json

import pytest

from ml import artifacts


def test_it_reads_its_own_format(tmp_path):
    (tmp_path / artifacts.META_FILE).write_text(json.dumps({"format_version": 1, "task_type": "multi_class"}))
    assert artifacts.load_meta(tmp_path)["task_type"] == "multi_class"


def test_an_unknown_format_version_is_a_clear_error(tmp_path):
    (tmp_path / artifacts.META_FILE).write_text(json.dumps({"format_version": 2, "task_type": "multi_class"}))
    with pytest.raises(ValueError, match="format_version 2; this version of ml/ reads format_version 1"):
        artifacts.load_meta(tmp_path)
